"""One long-lived worker process (faults.worker) that answers many steps, restarted when it
dies or stops answering; a death or a timeout is charged to the step it was working on.

One Python start per worker instead of per case keeps 1,000 cases to minutes; one worker
at a time keeps the CPU use of a fuzz run to one core.
"""
from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

EOF = "<eof>"
READY_TIMEOUT = 120.0  # imports of ONNX Runtime + LiteRT + onnx on a slow, busy machine
_REPO = str(Path(__file__).resolve().parents[2])


def _describe_exit(rc: int | None) -> str:
    if rc is not None and rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exited with code {rc} without answering"


class Worker:
    def __init__(self, log_path: Path):
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.buf = b""
        self.starts = 0

    def _start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_REPO, env.get("PYTHONPATH")) if p)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "tools.faults.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, env=env)
        self.buf = b""
        self.starts += 1
        first = self._read(READY_TIMEOUT)
        if first in (None, EOF) or json.loads(first).get("kind") != "ready":
            self.stop()
            raise RuntimeError(f"fuzz worker did not start; see {self.log_path}")

    def _read(self, timeout: float) -> str | None:
        """One answer line; None on timeout, EOF at end of file (the worker is gone)."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return EOF
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def _log_tail(self) -> str:
        try:
            text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", self.log_path.read_text(errors="replace"))
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        except OSError:
            return ""
        return lines[-1][:200] if lines else ""

    def call(self, request: dict, timeout: float) -> dict:
        """The worker's answer, or {"kind": "crash"|"hang", "detail": ...}."""
        if self.proc is None:
            self._start()
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # it died already; the read below finds out how
        line = self._read(timeout)
        if line is None:
            self.stop()
            return {"kind": "hang", "detail": f"no answer within {timeout:g} s"}
        if line is not EOF:
            return json.loads(line)
        try:  # the pipe closed: the process is exiting, or closed it and lives on (a bug too)
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            rc = None
        tail = self._log_tail()
        self.stop()
        return {"kind": "crash", "detail": _describe_exit(rc) + (f"; last stderr line: {tail}" if tail else "")}

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass
            self.proc = None
            self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
