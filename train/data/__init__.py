"""CIFAR-10 from wherever it is (the copy shipped in data/, Keras's download, or a path), or
any image folder with class subfolders (runtime/imagefolder.py).

`load(spec, val_size, seed)` returns uint8 NHWC arrays split into train / val / test. The
validation split is carved from train (seeded) for model selection; test is only for the
final report. Decoded arrays are cached as .npz keyed by the source's content, so a second
run starts in a second and a changed file is re-read.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from train.data.errors import DataError

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
REPO_DATA = Path(__file__).resolve().parents[2] / "data" / "cifar10-jpeg.tar.gz"
ENV_VAR = "EDGECNN_DATA"
TEST_ORDER_SEED = 10_000

__all__ = ["CLASSES", "DataError", "Splits", "load", "resolve"]


@dataclass
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple = CLASSES
    source: dict = field(default_factory=dict)  # what was read: kind, path, sha256, counts

    def describe(self) -> str:
        s = self.source
        return (f"data: {s.get('kind')} {s.get('path', '')} (sha256 {str(s.get('sha256', ''))[:12]}) "
                f"train {len(self.y_train)} / val {len(self.y_val)} / test {len(self.y_test)}")


def resolve(spec: str | None) -> tuple[str, str | None]:
    """Map a --data value to (reader kind, path). None/'' -> $EDGECNN_DATA, else the shipped copy."""
    spec = spec or os.environ.get(ENV_VAR) or "shipped"
    if spec == "official":
        return "official", None
    if spec == "shipped":
        if not REPO_DATA.exists():
            raise DataError(f"the shipped CIFAR-10 copy is missing: {REPO_DATA} (use --data PATH)")
        return "imagefolder", str(REPO_DATA)
    p = Path(spec)
    if not p.exists():
        raise DataError(f"data path not found: {spec}")
    if p.is_dir():
        if (p / "data_batch_1").exists() or (p / "cifar-10-batches-py").is_dir():
            return "pybatches", str(p)
        return "imagefolder", str(p)
    name = p.name.lower()
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        from train.data.pybatches import is_pybatches_archive
        return ("pybatches" if is_pybatches_archive(p) else "imagefolder"), str(p)
    raise DataError(f"unsupported data file (want a directory, .tar or .tar.gz): {spec}")


def load(spec: str | None = None, val_size: int = 5000, seed: int = 0,
         cache_dir: str | os.PathLike | None = None, size: tuple[int, int] | None = None) -> Splits:
    """size (H, W): what images of mixed sizes in an image folder are resized to (one size: kept)."""
    from train.data import cache
    from train.data.readers import READERS

    kind, path = resolve(spec)
    if val_size < 0:
        raise DataError(f"--val-size must be >= 0, got {val_size}")
    (xtr, ytr, xte, yte), meta = cache.cached(kind, path, READERS[kind], cache_dir, size)
    if val_size >= len(ytr):
        raise DataError(f"--val-size {val_size} leaves no training images (train has {len(ytr)})")
    # A fixed permutation per seed: the same seed always holds out the same images.
    perm = np.random.default_rng(seed).permutation(len(ytr))
    val, tr = perm[:val_size], perm[val_size:]
    # Image folders list the test split class by class; a fixed shuffle (the same for every
    # run and seed) makes any prefix, e.g. a bench's --limit 1000, a fair sample of all classes.
    te = np.random.default_rng(TEST_ORDER_SEED).permutation(len(yte))
    return Splits(xtr[tr], ytr[tr], xtr[val], ytr[val], xte[te], yte[te], tuple(meta.pop("classes")),
                  {**meta, "val_size": val_size, "split_seed": seed})
