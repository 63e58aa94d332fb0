"""Shared fixtures: tiny CIFAR-shaped data in every on-disk format the loader reads.

Nothing here downloads anything; EDGECNN_CACHE points every test at its own cache folder."""
from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def tiny_arrays(n_train=200, n_test=50, seed=0):
    """Learnable synthetic data: each class is a distinct mean colour plus noise."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = np.arange(n) % 10
        base = (np.stack([y * 23 % 256, y * 71 % 256, y * 131 % 256], -1)[:, None, None, :]).astype(np.int16)
        x = np.clip(base + rng.integers(-40, 41, (n, 32, 32, 3)), 0, 255).astype(np.uint8)
        return x, y.astype(np.int64)

    return (*make(n_train), *make(n_test))


def write_imagefolder(root: Path, arrays, fmt="png") -> Path:
    from PIL import Image
    xtr, ytr, xte, yte = arrays
    for split, x, y in (("train", xtr, ytr), ("test", xte, yte)):
        for i, (img, lab) in enumerate(zip(x, y)):
            d = root / split / CLASSES[lab]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{i:04d}.{fmt}")
    return root


def write_tar(src: Path, dest: Path, arcname: str) -> Path:
    with tarfile.open(dest, "w:gz" if dest.name.endswith("gz") else "w") as tf:
        tf.add(src, arcname=arcname)
    return dest


def write_pybatches(root: Path, arrays) -> Path:
    """The official cifar-10-batches-py layout: 5 train batches + test_batch, pickled dicts."""
    xtr, ytr, xte, yte = arrays
    root.mkdir(parents=True, exist_ok=True)
    to_rows = lambda x: x.transpose(0, 3, 1, 2).reshape(len(x), -1)  # noqa: E731  CHW rows, as CIFAR stores
    for i, (xs, ys) in enumerate(zip(np.array_split(xtr, 5), np.array_split(ytr, 5)), 1):
        with open(root / f"data_batch_{i}", "wb") as f:
            pickle.dump({b"data": to_rows(xs), b"labels": ys.tolist()}, f)
    with open(root / "test_batch", "wb") as f:
        pickle.dump({b"data": to_rows(xte), b"labels": yte.tolist()}, f)
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("EDGECNN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def tiny():
    return tiny_arrays()


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory, tiny):
    return write_imagefolder(tmp_path_factory.mktemp("imgs") / "cifar", tiny)


def png_bytes(img: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


# A real seed model trained for a few seconds on a tiny image folder, as a run folder: shared by
# the export tests and the experiments' tests (helpers in tests/export/conftest.py).
@pytest.fixture(scope="session")
def export_env(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGECNN_CACHE", str(tmp_path_factory.mktemp("export-cache")))
        mp.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
        yield


@pytest.fixture(scope="session")
def data_dir(export_env, tmp_path_factory) -> Path:
    return _export_helpers().write_imagefolder(tmp_path_factory.mktemp("export-data") / "cifar")


@pytest.fixture(scope="session")
def tanhexp_run(data_dir, tmp_path_factory) -> Path:
    return _export_helpers().make_run(tmp_path_factory.mktemp("runs") / "seed-tanhexp-s0", data_dir, "tanhexp", epochs=4)


@pytest.fixture(scope="session")
def relu_run(data_dir, tmp_path_factory) -> Path:
    return _export_helpers().make_run(tmp_path_factory.mktemp("runs") / "seed-relu-s0", data_dir, "relu", epochs=0)



def _export_helpers():
    from tests.export import conftest
    return conftest
