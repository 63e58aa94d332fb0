"""Two kinds of failure, because they end differently.

`BenchError`: the run as a whole cannot proceed (no bundle, bad manifest, damaged test
split). The CLI prints one `error: ...` line and exits 2.
`ModelError`: one model cannot be measured. It becomes that model's row, with `error` set,
and the other models still run.
"""
from __future__ import annotations


def one_line(exc: BaseException | str, limit: int = 300, with_type: bool = True) -> str:
    """A message fit for a table cell and a JSON field: first non-empty line, bounded.
    Foreign exceptions get their type name in front, where it says more than the text."""
    text = str(exc).strip()
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if with_type and isinstance(exc, BaseException) and not isinstance(exc, (BenchError, ModelError)):
        line = f"{type(exc).__name__}: {line}" if line else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


class BenchError(Exception):
    """A CLI-level problem: print one line, exit 2."""


class ModelError(Exception):
    """A per-model problem: becomes the `error` of that model's row."""


class MissingRuntime(ModelError):
    """The inference package for a format is not installed on this device."""

    def __init__(self, fmt: str, package: str):
        super().__init__(f"no runtime for {fmt} models on this device: pip install {package}")
        self.fmt, self.package = fmt, package


class DataError(BenchError):
    """Bad or missing images or labels (runtime/imagefolder.py, train.data): one line."""
