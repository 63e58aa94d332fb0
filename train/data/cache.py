"""Decode once, then load the arrays from an .npz keyed by the source's content.

Files are keyed by their sha256 (so an edited file is re-read); directories by a hash of
every file's relative path, size and mtime (hashing 60,000 JPEGs' bytes would cost more than
decoding them). The .npz is written to a temporary name and renamed: a killed run never
leaves a half-written cache, and a corrupt one is ignored and rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from runtime.fileio import atomic_path, sha256_file

VERSION = 2  # bump when a reader's output changes (2: class names and split info stored)
KEYS = ("x_train", "y_train", "x_test", "y_test")


def default_dir() -> Path:
    return Path(os.environ.get("EDGECNN_CACHE", Path.home() / ".cache" / "edgecnn"))


def fingerprint(path: str | None) -> str:
    if path is None:
        return "official"
    p = Path(path)
    if p.is_file():
        return sha256_file(p)
    h = hashlib.sha256()
    for f in sorted(q for q in p.rglob("*") if q.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _read(f: Path):
    with np.load(f, allow_pickle=False) as z:
        return tuple(z[k] for k in KEYS), json.loads(str(z["info"]))


def cached(kind: str, path: str | None, reader, cache_dir=None, size: tuple[int, int] | None = None):
    """(arrays, meta). A folder of one image size is cached as decoded, whatever `size` says;
    one of mixed sizes (resized to `size` while decoding) under a name that carries the size."""
    digest = fingerprint(path)
    meta = {"kind": kind, "path": path, "sha256": digest}
    stem = Path(cache_dir or default_dir()) / f"cifar10-{kind}-v{VERSION}-{digest[:20]}"
    names = [stem.with_suffix(".npz")] + ([Path(f"{stem}-{size[0]}x{size[1]}.npz")] if size else [])
    for f in names:
        if not f.exists():
            continue
        try:
            arrays, info = _read(f)
            return arrays, {**meta, **info, "cache": str(f), "cache_hit": True}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            print(f"warning: ignoring corrupt cache {f}", file=sys.stderr)
    t = time.perf_counter()
    print(f"decoding {kind} data from {path or 'keras download'} (once; cached afterwards)", file=sys.stderr)
    arrays, info = reader(path, size)
    f = names[-1] if info.get("resized") else names[0]
    try:
        with atomic_path(f) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **dict(zip(KEYS, arrays)), info=np.asarray(json.dumps(info)))
        # A killed run leaves its temporary file (kill -9 skips cleanup), as big as the cache.
        # One still being written by a concurrent run only costs that run its (optional) write.
        for stale in f.parent.glob(f".{f.name}.*.tmp"):
            stale.unlink(missing_ok=True)
    except OSError as e:  # a read-only home must not stop training
        print(f"warning: could not write cache {f}: {e}", file=sys.stderr)
    return arrays, {**meta, **info, "cache": str(f), "cache_hit": False,
                    "decode_s": round(time.perf_counter() - t, 2)}
