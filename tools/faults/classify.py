"""What counts as a pass: one outcome per (case, step), decided here and nowhere else.

Steps: `bundle` (the mutated file sits in a bundle copy whose manifest still names the
original's sha256), `bare` (the same file given as `--model FILE`, where there is no hash),
`export` (export's checks of a converted file: op list, allow-list, validate, describe),
and `cli_bundle` / `cli_bare` (the real `python -m runtime.bench` on a sample of cases).

Outcomes:
  clean_error  the case ended in a one-line error message (an error row, a BenchError, an
               ExportError), which is what a hostile file must produce
  contained    bare only: the runtime library crashed in-process (the worker died by a
               signal) and the real, isolated bench (`--model FILE`) turned that same file
               into a one-line error row, as runtime/isolate.py promises; not a failure of the
               bench, but counted apart because it is a crash of LiteRT / ONNX Runtime
  ok           bare/export only: the damaged file is still a valid model and ran (a weight
               bit flip changes answers, not validity; without a hash nothing can tell, and
               the bench checks its outputs are finite probabilities of the right shape)
  undetected   bundle only: a file whose bytes differ from the manifest's sha256 reached the
               native loader (`load_ms` set) or was benchmarked (no error)
  dirty        an error that is not one line, mentions a traceback, or an exception that
               escaped the code under test (the CLI would print a traceback)
  crash        the process died by a signal (or exited with no answer)
  hang         no answer within the per-step timeout
"""
from __future__ import annotations

OUTCOMES = ("clean_error", "ok", "contained", "undetected", "dirty", "crash", "hang")
FAILURES = ("undetected", "dirty", "crash", "hang")
STEPS = ("bundle", "bare", "export", "cli_bundle", "cli_bare")
MAX_MESSAGE = 500


def one_line_ok(msg) -> bool:
    return (isinstance(msg, str) and bool(msg.strip()) and "\n" not in msg and "\r" not in msg
            and "Traceback" not in msg and len(msg) <= MAX_MESSAGE)


def classify(step: str, result: dict) -> tuple[str, str]:
    """(outcome, detail) for one step's result as the worker (or the pool) reported it.

    Result kinds: row (a bench row: error, sha256_ok, load_ms), bench_error, export_error,
    export_ok, escaped (an exception got out), crash, hang; cli (see faults.clicheck)."""
    kind = result.get("kind")
    if kind in ("crash", "hang"):
        return kind, result.get("detail", "")
    if kind == "escaped":
        return "dirty", f"{result.get('type')}: {result.get('message')}"
    if kind == "cli":
        return result["outcome"], result.get("detail", "")
    if kind in ("bench_error", "export_error"):
        msg = result.get("message")
        return ("clean_error" if one_line_ok(msg) else "dirty"), str(msg)
    if kind == "export_ok":
        return "ok", "passed export's checks"
    if kind == "row":
        err = result.get("error")
        if step == "bundle" and (result.get("load_ms") is not None or err is None
                                 or result.get("sha256_ok") is True):
            return "undetected", err or "benchmarked a file that does not match its sha256"
        if err is None:
            return "ok", f"ran on {result.get('count')} images"
        return ("clean_error" if one_line_ok(err) else "dirty"), str(err)
    return "dirty", f"unknown result {result!r}"[:MAX_MESSAGE]
