"""Small, dependency-free file helpers shared by every stage.

Lives in `runtime/` because that is the one package a Raspberry Pi installs: train/ and
export/ may import from here, never the other way round.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to `path`; rename it over `path` only if the block succeeds.

    A crash or kill -9 at any point leaves either the old file or the new one, never half
    of one (rename is atomic within a file system, hence the same directory)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the final file ordinary permissions
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:  # make the bytes durable before the name points at them
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def check_writable(path: str | os.PathLike) -> None:
    """Raise OSError now if `path` cannot be written later by `atomic_path`: it is a folder,
    or its folder is read-only, not a folder, or cannot be created. Leaves nothing behind.
    The error's strerror is the reason alone ("Read-only file system"), for the caller to
    prefix with what it was writing. A full disk still shows only when the bytes are written;
    atomic_path then keeps the earlier file as it was."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "it is a folder", str(path))
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{existing} is not a folder", str(path))
    if existing == path.parent:  # the real test: make (and remove) a file where the rename will happen
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=existing)
        os.close(fd)
        os.unlink(probe)
    elif not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"cannot create folders in {existing}", str(path))


def write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def write_text(path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o):
    # numpy scalars and paths show up in configs and metrics; keep json.dumps strict otherwise
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
