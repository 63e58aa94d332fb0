"""Resident memory of this process, from /proc (Linux) or getrusage elsewhere.

Peak RSS (VmHWM) is process-wide and only grows, so a per-model peak needs either a fresh
process per model (runtime.isolate, the default) or a reset of the high-water mark, which
Linux offers by writing "5" to /proc/self/clear_refs. Under qemu-user emulation these are
the emulator's numbers (guest + translator), so only compare them between emulated runs.
"""
from __future__ import annotations

import sys

_MB = 1024.0


def _status_kb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_mb() -> float | None:
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / _MB


def peak_rss_mb() -> float | None:
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb / _MB
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (_MB * _MB) if sys.platform == "darwin" else peak / _MB  # bytes vs kB


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS; False where the kernel or sandbox does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
