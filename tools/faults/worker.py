"""The fuzz worker: `python -m tools.faults.worker`, one JSON request per stdin line, one JSON
answer per line on the protocol pipe. It runs the code under test in-process (that is the
point: a native crash must kill *something* the pool can see and attribute to the case),
and it is restarted by the pool after a crash or a hang.

Requests: {"step": "bundle", "bundle": DIR, "file": NAME, "format": F, "mode": M}
          {"step": "bare", "path": FILE, "data": NPZ}
          {"step": "export", "path": FILE, "format": F}
          {"step": "selftest", "do": "signal" | "sleep"}  (the pool's own tests)
"""
from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time

# A mutated shape can ask for terabytes; cap the address space so such a case fails in
# malloc instead of pushing a shared machine into swap or the OOM killer.
MEMORY_LIMIT = 6 << 30
FAST = dict(runs=3, warmup=1, batch=8)  # the steps check robustness, not speed


def step_bundle(req: dict) -> dict:
    from runtime.errors import BenchError, one_line
    from runtime.measure import BenchConfig, run_bench
    cfg = BenchConfig(bundle=req["bundle"], formats=[req["format"]], modes=[req["mode"]],
                      isolate=False, **FAST)
    try:
        doc = run_bench(cfg).doc
    except BenchError as e:
        return {"kind": "bench_error", "message": one_line(e)}
    row = next(r for r in doc["rows"] if r["file"] == req["file"])
    return {"kind": "row", **{k: row.get(k) for k in ("error", "sha256_ok", "load_ms", "count")}}


def step_bare(req: dict) -> dict:
    from runtime.errors import BenchError, one_line
    from runtime.measure import BenchConfig, run_bench
    cfg = BenchConfig(models=[req["path"]], data=req["data"], isolate=False, **FAST)
    try:
        row = run_bench(cfg).doc["rows"][0]
    except BenchError as e:
        return {"kind": "bench_error", "message": one_line(e)}
    return {"kind": "row", **{k: row.get(k) for k in ("error", "sha256_ok", "load_ms", "count")}}


def step_export(req: dict) -> dict:
    """The checks export_one (export/api.py) runs on a converted file, wrapped the same way."""
    from export import opcheck
    from export.errors import ExportError, one_line
    from export.formats import READERS
    fmt, path = req["format"], req["path"]
    reader = READERS[fmt]
    try:
        ops = reader.ops(path)
        opcheck.check(fmt, ops, os.path.basename(path))
        reader.validate(path)
        reader.describe(path)
    except ExportError as e:
        return {"kind": "export_error", "message": str(e), "raw": type(e).__name__}
    except Exception as e:  # export_one turns these into ExportFailed('fmt/mode: Type: msg')
        return {"kind": "export_error", "message": f"{type(e).__name__}: {one_line(e)}",
                "raw": type(e).__name__}
    return {"kind": "export_ok"}


def step_selftest(req: dict) -> dict:
    """For the pool's own tests: die by a signal, or stop answering, on request."""
    if req.get("do") == "signal":
        os.kill(os.getpid(), signal.SIGSEGV)
    if req.get("do") == "sleep":
        time.sleep(float(req.get("seconds", 3600)))
    return {"kind": "export_ok"}


STEPS = {"bundle": step_bundle, "bare": step_bare, "export": step_export, "selftest": step_selftest}


def serve(requests, answer) -> None:
    for line in requests:
        req = json.loads(line)
        try:
            res = STEPS[req["step"]](req)
        except Exception as e:  # escaped the code under test: the CLI would show a traceback
            res = {"kind": "escaped", "type": type(e).__name__, "message": str(e)[:300]}
        answer(json.dumps(res))


def main() -> int:
    # The answers go to a private copy of stdout; fd 1 itself goes to stderr, so whatever a
    # native library prints cannot corrupt the protocol.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    except (ValueError, OSError):
        pass
    import export.formats  # noqa: F401  (warm the imports before "ready": not per-step time)
    import runtime.backends.litert  # noqa: F401
    import runtime.backends.onnxrt  # noqa: F401

    def answer(text: str) -> None:
        proto.write(text + "\n")
        proto.flush()

    answer('{"kind": "ready"}')
    serve(sys.stdin, answer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
