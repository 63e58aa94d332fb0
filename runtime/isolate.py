"""Measure a model in a fresh Python process: `python -m runtime.isolate JOB.json`.

Why: peak RSS is process-wide and never goes down, so only a process that loaded nothing
else can say what one model costs; and a native runtime that aborts on a malformed model
(LiteRT can, for some flatbuffers its verifier accepts) takes down only the child, which
the parent turns into an error row. The cost is one interpreter start + imports per model.

Where the child cannot be started (qemu-user without binfmt_misc cannot exec an emulated
binary), `measure_in_child` raises Unavailable and the bench measures in-process.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from runtime.errors import one_line
from runtime.fileio import write_json
from runtime.measure import Job, measure_artifact
from runtime.schema import new_row

_PKG_PARENT = str(Path(__file__).resolve().parents[1])


class Unavailable(Exception):
    """A child process cannot be started on this system."""


@contextlib.contextmanager
def workdir():
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as d:
        yield Path(d)


def _describe(rc: int, stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith("INFO:")]
    tail = f": {lines[-1][:200]}" if lines else ""
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        return f"runtime crashed ({name}) on this model{tail}"
    return f"measuring process failed (exit {rc}){tail}"


def measure_in_child(job: Job, tmp: Path, index: int) -> tuple[dict, np.ndarray | None]:
    job_path, row_path, probs_path = (tmp / f"{kind}{index}.{ext}" for kind, ext in
                                      (("job", "json"), ("row", "json"), ("probs", "npy")))
    write_json(job_path, {"job": job.to_dict(), "row": str(row_path), "probs": str(probs_path)})
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PKG_PARENT, env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.run([sys.executable, "-m", "runtime.isolate", str(job_path)], env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              errors="replace", timeout=job.config.timeout)
    except OSError as e:
        raise Unavailable(one_line(e)) from None
    except subprocess.TimeoutExpired:
        row = new_row(job.artifact, job.label, job.config.threads, True)
        row["error"] = f"timed out after {job.config.timeout:g} s"
        return row, None
    if row_path.is_file():
        row = json.loads(row_path.read_text())
        return row, (np.load(probs_path, allow_pickle=False) if probs_path.is_file() else None)
    if proc.returncode in (126, 127):  # the shell-style "cannot execute" codes
        raise Unavailable(proc.stderr.strip()[-200:])
    row = new_row(job.artifact, job.label, job.config.threads, True)
    row["error"] = _describe(proc.returncode, proc.stderr)
    return row, None


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    row, probs = measure_artifact(Job.from_dict(spec["job"]), isolated=True)
    if probs is not None:
        np.save(spec["probs"], probs, allow_pickle=False)
    write_json(spec["row"], row)  # written last: its presence means the child finished
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
