"""Keep TensorFlow's native log lines off the CLIs' stderr, so that a failure reads as one line.

TensorFlow's C++ libraries write through absl logging straight to file descriptor 2 when
they load and when a device initializes ("WARNING: All log messages before
absl::InitializeLog() ...", "I0000 ... port.cc:153] oneDNN custom operations are on",
"E0000 ... failed call to cuInit" on a machine without a GPU). Those lines are written
before absl reads any flag, so TF_CPP_MIN_LOG_LEVEL does not stop them; and since they go to
the descriptor, not to `sys.stderr`, nothing in Python can intercept them either.

`native_logs_filtered()` therefore points descriptor 2 at a pipe read by a forked process
that forwards everything except native log lines below TF_CPP_MIN_LOG_LEVEL (the level
TensorFlow documents but cannot honour for these lines; the CLIs default it to 2, hiding
INFO and WARNING) and a short list of errors that only say "no GPU here". A process rather
than a thread, because a thread dies with a crashing interpreter and would swallow the very
lines (F0000 fatal checks, faulthandler tracebacks) that explain the crash; the forked
filter drains the pipe until its last writer is gone, whatever happened to the CLI.

Never dropped: our own messages, Python warnings and tracebacks, absl-py's Python log lines
(their source is a .py file), FATAL native lines, anything when EDGECNN_NATIVE_LOGS=1 or
TF_CPP_MIN_LOG_LEVEL=0. Dependency-free (os, re, select, signal), no import-time effects.
"""
from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import sys
import time

ENV = "EDGECNN_NATIVE_LOGS"  # set to 1: no filtering at all
# absl: "I0000 00:00:1795850981.402427    2810 port.cc:153] msg" (date and time are zero
# before absl::InitializeLog); TensorFlow's older glog-style prefix:
# "2024-05-01 12:00:00.123456: W tensorflow/core/x.cc:42] msg". Only native sources
# (.cc/.h/...): absl-py's Python log lines share the absl prefix but name a .py file.
_NATIVE = rb"\S+\.(?:cc|cpp|cxx|c|h|hpp):\d+\] "
ABSL = re.compile(rb"^([IWEF])\d{4} \d\d:\d\d:\d+(?:\.\d+)?\s+\d+\s+" + _NATIVE)
GLOG = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?: ([IWEF]) " + _NATIVE)
BANNER = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# ERROR-level lines that only report a missing GPU stack on a CPU machine (seen with TF 2.15-2.21).
GPU_ABSENT = (b"failed call to cuInit", b"Unable to register cuDNN factory", b"Unable to register cuFFT factory",
              b"Unable to register cuBLAS factory", b"computation placer already registered")
# Second lines of multi-line native messages, dropped only right after their first line.
CONTINUATIONS = (b"To enable the following instructions:",)
HOLD_S = 0.3  # a partial line is held this long in case it is a log line still being written


def level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    except ValueError:
        return 2


def keep(line: bytes, min_level: int) -> bool:
    """Whether one stderr line (without its newline) reaches the user."""
    if min_level <= 0:
        return True
    if line.rstrip(b"\r") == BANNER:
        return False
    m = ABSL.match(line) or GLOG.match(line)
    if not m:
        return True
    severity = b"IWEF".index(m.group(1))  # INFO 0, WARNING 1, ERROR 2, FATAL 3
    if severity == 3:
        return True
    if severity == 2 and any(s in line for s in GPU_ABSENT):
        return False
    return severity >= min_level


def _may_be_log(partial: bytes) -> bool:
    """Could this unfinished line still become a native log line or the banner?"""
    return len(partial) < 512 and (partial[:1] in (b"I", b"W", b"E", b"F") or partial[:1].isdigit())


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fd, data):]
        except InterruptedError:
            continue
        except OSError:
            return  # stderr went away: keep draining so that the CLI never blocks on the pipe


def pump(src: int, dst: int, min_level: int) -> None:
    """Copy src to dst line by line, dropping what `keep` rejects, until end of file."""
    buf, dropped = b"", False
    while True:
        if buf and not select.select([src], [], [], HOLD_S)[0]:
            _write_all(dst, buf)  # nothing more came: it was not a log line in the making
            buf = b""
            continue
        try:
            chunk = os.read(src, 1 << 16)
        except InterruptedError:
            continue
        if not chunk:
            break
        *lines, buf = (buf + chunk).split(b"\n")
        kept = []
        for ln in lines:
            ok = keep(ln, min_level) and not (dropped and ln.startswith(CONTINUATIONS))
            dropped = not ok
            if ok:
                kept.append(ln + b"\n")
        out = b"".join(kept)
        if buf and not _may_be_log(buf):
            out, buf = out + buf, b""
        _write_all(dst, out)
    if buf and keep(buf, min_level):
        _write_all(dst, buf)


def _child(read_end: int, stderr: int, min_level: int) -> None:
    # Ctrl-C, kill and hang-up are for the CLI; the filter ends when its pipe does, after the
    # CLI's last words are out.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)  # a caller reading the CLI's stdout must not wait for the filter
    keep_fds = sorted({read_end, stderr})
    os.closerange(3, keep_fds[0])
    os.closerange(keep_fds[0] + 1, keep_fds[-1])
    os.closerange(keep_fds[-1] + 1, 1 << 16)
    pump(read_end, stderr, min_level)


@contextlib.contextmanager
def native_logs_filtered(wait_s: float = 5.0):
    """Filter descriptor 2 for the duration of the block (see the module docstring). Enter it
    before TensorFlow is imported, while the process has one thread (it forks)."""
    min_level = level()
    if os.environ.get(ENV, "").strip() not in ("", "0") or min_level <= 0 or not hasattr(os, "fork"):
        yield
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
        read_end, write_end = os.pipe()
        pid = os.fork()
    except OSError:  # no fork, no descriptors left: run unfiltered rather than not at all
        yield
        return
    if pid == 0:
        try:
            os.close(write_end)
            _child(read_end, saved, min_level)
        finally:
            os._exit(0)
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer is gone: the filter drains it and exits
        os.close(saved)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:  # a child of ours holding the pipe: do not hang
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.005)
