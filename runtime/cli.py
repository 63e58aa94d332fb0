"""The command-line pieces every stage shares (TensorFlow-free, so the device CLIs use them too).

Every command answers bad input with one line, `error: ...`, and exit code 2: argparse's own
usage dump buries the one thing that is wrong, and scripts that drive these commands (the
fault harness, CI) read the first line that starts with "error".
"""
from __future__ import annotations

import argparse
import sys


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2)."""

    def error(self, message):
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where there is one worth saying (not None, not False)."""

    def _get_help_string(self, action):
        return action.help if action.default in (None, False) else super()._get_help_string(action)


def floats(s: str) -> list[float]:
    """argparse type: numbers separated by commas, one per channel (e.g. --mean 0.485,0.456,0.406)."""
    try:
        return [float(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {s!r}") from None


def config_from_args(cls, args, **overrides):
    """The stage's dataclass config from parsed arguments: every field an option of the same
    name sets (argparse's dest), so an option is written once in the parser and once in the
    dataclass, never a third time in a constructor call. `overrides` for the few options whose
    shape differs (a flag that negates a field, a comma list)."""
    import dataclasses
    given = vars(args)
    kw = {f.name: given[f.name] for f in dataclasses.fields(cls) if f.name in given}
    return cls(**{**kw, **overrides})


def one_line(e: BaseException | str) -> str:
    """Any message on one line: tracebacks and multi-line library errors folded."""
    return " ".join(str(e).split())


def fail(message: BaseException | str, code: int = 2) -> int:
    """Print `error: message` on one line to stderr; returns the exit code for `return fail(...)`."""
    print(f"error: {one_line(message)}", file=sys.stderr)
    return code
