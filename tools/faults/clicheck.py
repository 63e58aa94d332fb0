"""The real command line on a hostile file: `python -m runtime.bench` as a user runs it
(isolated, one child per model), checked against its documented contract.

Exit 0: every model measured; 1: a model failed and its row says why (stderr: at most one
`error: ...` summary line); 2: the run could not start, with exactly one `error: ...` line on
stderr. Never a traceback, never a signal.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.faults.classify import one_line_ok

_REPO = str(Path(__file__).resolve().parents[2])
FAST = ("--runs", "3", "--warmup", "1", "--batch", "8", "--no-progress")


def run_bench_cli(args: list, timeout: float) -> tuple[int | None, str, dict | None]:
    """(exit code or None on timeout, stderr, the --json document or None)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (_REPO, os.environ.get("PYTHONPATH")) if p)}
    with tempfile.TemporaryDirectory(prefix="fuzz-cli-") as d:
        out = Path(d) / "r.json"
        cmd = [sys.executable, "-m", "runtime.bench", *map(str, args), *FAST, "--json", str(out),
               "--timeout", f"{timeout:g}"]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=env,
                               stdin=subprocess.DEVNULL, timeout=timeout * 2 + 30)
        except subprocess.TimeoutExpired:
            return None, "", None
        doc = json.loads(out.read_text()) if out.is_file() else None
        return p.returncode, p.stderr, doc


def judge(step: str, rc: int | None, stderr: str, doc: dict | None) -> dict:
    """A `cli` result for faults.classify: outcome and detail."""
    def res(outcome, detail):
        return {"kind": "cli", "outcome": outcome, "detail": detail[:300]}

    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    if rc is None:
        return res("hang", "the bench command did not finish")
    if rc < 0:
        return res("crash", f"the bench command died by signal {-rc}")
    if "Traceback" in stderr:
        return res("dirty", f"traceback on stderr: {lines[-1] if lines else ''}")
    if rc == 2:
        ok = len(lines) == 1 and lines[0].startswith("error: ") and one_line_ok(lines[0])
        return res("clean_error" if ok else "dirty", lines[0] if ok else f"exit 2 with stderr {lines[:3]}")
    # exit 0/1 may say one summary line ("error: 1 of 1 model(s) failed; ..."), no more
    if len(lines) > 1 or (lines and not (lines[0].startswith("error: ") and one_line_ok(lines[0]))):
        return res("dirty", f"exit {rc} with stderr {lines[:3]}")
    if rc not in (0, 1) or doc is None:
        return res("dirty", f"exit {rc}, no result document")
    row = doc["rows"][0]
    if rc == 1 and row.get("error") is None:
        return res("dirty", "exit 1 but the row has no error")
    if rc == 0 and row.get("error") is not None:
        return res("dirty", "exit 0 but the row has an error")
    if step == "cli_bundle" and (row.get("load_ms") is not None or row.get("error") is None):
        return res("undetected", row.get("error") or "benchmarked a file that fails its sha256")
    if row.get("error") is not None:
        return res("clean_error" if one_line_ok(row["error"]) else "dirty", row["error"])
    return res("ok", f"exit 0, ran on {row.get('count')} images")


def check_bundle(bundle: Path, fmt: str, mode: str, timeout: float) -> dict:
    return judge("cli_bundle", *run_bench_cli(["--bundle", bundle, "--formats", fmt, "--modes", mode], timeout))


def check_bare(path: Path, data: Path, timeout: float) -> dict:
    return judge("cli_bare", *run_bench_cli(["--model", path, "--data", data], timeout))
