"""The official `cifar-10-python.tar.gz` (or its extracted `cifar-10-batches-py/`).

Those batches are pickles. We unpickle them with an allow-list that admits only what CIFAR's
batches contain (dicts, lists, bytes, numpy arrays), so a hostile file cannot run code.
"""
from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from train.data.errors import DataError

TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
TEST = ["test_batch"]
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _batch(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
        x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        y = np.asarray(d[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, AttributeError) as e:
        raise DataError(f"{name}: not a CIFAR-10 python batch ({e})") from None
    if len(x) != len(y) or (len(y) and (y.min() < 0 or y.max() > 9)):
        raise DataError(f"{name}: labels do not match the images or are outside 0..9")
    return np.ascontiguousarray(x), y


def _stack(get, names) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*(_batch(get(n), n) for n in names))
    return np.concatenate(xs), np.concatenate(ys)


def is_pybatches_archive(path) -> bool:
    try:
        with tarfile.open(path, "r:*") as tf:
            first = tf.next()
            while first is not None and not first.isfile():
                if first.name.rstrip("/").endswith("cifar-10-batches-py"):
                    return True
                first = tf.next()
            return first is not None and "cifar-10-batches-py" in first.name
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(f"{path}: unreadable or truncated archive ({e})") from None


def read(path: str) -> tuple:
    p = Path(path)
    if p.is_dir():
        root = p / "cifar-10-batches-py" if (p / "cifar-10-batches-py").is_dir() else p
        missing = [n for n in TRAIN + TEST if not (root / n).is_file()]
        if missing:
            raise DataError(f"{root}: missing batch file(s): {', '.join(missing)}")
        get = lambda n: (root / n).read_bytes()  # noqa: E731
        return (*_stack(get, TRAIN), *_stack(get, TEST))
    try:
        with tarfile.open(p, "r:*") as tf:
            members = {Path(m.name).name: tf.extractfile(m).read() for m in tf if m.isfile()}
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(f"{path}: unreadable or truncated archive ({e})") from None
    missing = [n for n in TRAIN + TEST if n not in members]
    if missing:
        raise DataError(f"{path}: missing batch file(s): {', '.join(missing)}")
    return (*_stack(members.__getitem__, TRAIN), *_stack(members.__getitem__, TEST))
