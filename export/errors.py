"""The two ways an export stops, each printed by the CLI as one `error: ...` line."""
from __future__ import annotations


class ExportError(Exception):
    exit_code = 1

    def __init__(self, message: str):
        # one line, always: the CLI contract is a single stderr line per failure
        super().__init__(" ".join(str(message).split()))


class BadInput(ExportError):
    """The command line, run folder, model or output folder is unusable (exit 2)."""
    exit_code = 2


class ExportFailed(ExportError):
    """A conversion or a check of a converted model failed (exit 1); nothing of it is kept."""
    exit_code = 1


class OpNotAllowed(ExportFailed):
    """A converted model uses an op outside its format's allow-list."""


def one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    return msg if len(msg) <= 400 else msg[:400] + " ..."
