"""Small valid inputs for the bad-input matrix, each one file or folder away from a bad one.

Everything here is tiny and synthetic (32x32 images, a few per class), made on the spot,
never downloaded. Builders that need TensorFlow (a real model.keras, a real .tflite) run in
a child process (`python -m tools.faults.fixtures KIND DIR ...`) so that the matrix runner itself
never imports TensorFlow and its stderr stays its own.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np

from runtime.fileio import sha256_file, write_json

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
PER_CLASS = {"train": 5, "test": 2}  # 50 training images: val 10 leaves 40 to train on
VAL_SIZE = 10


def images(n: int, seed: int = 0, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """n images cycling through the 10 classes, each class its own tint plus noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    tint = np.random.default_rng(7).uniform(30, 225, (10, 3))
    x = tint[y][:, None, None, :] + rng.normal(0, 25, (n, size, size, 3))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8), y.astype(np.int64)


def png(img: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def imagefolder(root: Path, skip_class: str | None = None, extra_class: str | None = None,
                odd_size: int | None = None) -> Path:
    """train/<class>/NNNN.png and test/<class>/NNNN.png; optionally with one class missing from
    test, one class folder only train has, or one image of the wrong size. (Class names are the
    folder names, so a class absent from both splits, or present in both, is a valid data set.)"""
    for split, seed in (("train", 1), ("test", 2)):
        x, y = images(PER_CLASS[split] * 10, seed)
        for i, (img, lab) in enumerate(zip(x, y)):
            if CLASSES[lab] == skip_class and split == "test":
                continue
            d = root / split / CLASSES[lab]
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{i:04d}.png").write_bytes(png(img))
        if extra_class and split == "train":
            (root / split / extra_class).mkdir(parents=True, exist_ok=True)
            (root / split / extra_class / "0000.png").write_bytes(png(x[0]))
    if odd_size:
        (root / "train" / "cat" / "9999.png").write_bytes(png(images(1, 3, odd_size)[0][0]))
    return root


def tar(src: Path, dest: Path, arcname: str = "cifar") -> Path:
    with tarfile.open(dest, "w:gz" if dest.name.endswith("gz") else "w") as tf:
        tf.add(src, arcname=arcname)
    return dest


def pybatches(root: Path, labels_offset: int = 0, row_len: int | None = None, skip: str | None = None) -> Path:
    """cifar-10-batches-py/: data_batch_1..5 and test_batch, pickled dicts as CIFAR ships them."""
    root.mkdir(parents=True, exist_ok=True)
    xtr, ytr = images(50, 1)
    xte, yte = images(20, 2)
    rows = lambda x: x.transpose(0, 3, 1, 2).reshape(len(x), -1)[:, :row_len]  # noqa: E731
    batches = {f"data_batch_{i}": (xs, ys) for i, (xs, ys) in
               enumerate(zip(np.array_split(xtr, 5), np.array_split(ytr, 5)), 1)}
    batches["test_batch"] = (xte, yte)
    for name, (xs, ys) in batches.items():
        if name != skip:
            with open(root / name, "wb") as f:
                pickle.dump({b"data": rows(xs), b"labels": (ys + labels_offset).tolist()}, f)
    return root


def hostile_pickle(path: Path) -> Path:
    """A pickle that would run a shell command if loaded with plain pickle.load."""
    class Boom:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    path.write_bytes(pickle.dumps({b"data": Boom(), b"labels": [0]}))
    return path


def run_config(data: Path, act: str = "tanhexp", **over) -> dict:
    from train.config import TrainConfig
    cfg = TrainConfig(act=act, epochs=1, batch_size=10, data=str(data), val_size=VAL_SIZE, verbose=2)
    return {**cfg.to_dict(), **over, "data_source": {"kind": "imagefolder", "path": str(data)}}


def stub_keras(path: Path) -> Path:
    """A zip shaped like a .keras file (config.json + model.weights.h5, CRCs fine): enough for
    export's pre-TensorFlow check, not for Keras."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps({"class_name": "Functional", "config": {}}))
        z.writestr("metadata.json", json.dumps({"keras_version": "2.21.0"}))
        z.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + bytes(64))
    return path


def stub_run(run: Path, data: Path, **over) -> Path:
    """A finished-looking run folder (config.json, metrics.json, a stub model.keras)."""
    run.mkdir(parents=True, exist_ok=True)
    write_json(run / "config.json", run_config(data, **over))
    write_json(run / "metrics.json", {"test_accuracy": 0.1, "epochs": 1})
    stub_keras(run / "model.keras")
    return run


def stub_bundle(out: Path, n: int = 20) -> Path:
    """An edge-bundle/1 folder with valid test/reference arrays and hashes, whose one model
    file is not a model: everything a run-level check reads is fine."""
    out.mkdir(parents=True, exist_ok=True)
    x, y = images(n, 4)
    np.savez(out / "test.npz", x=x, y=y)
    np.savez(out / "reference.npz", probs=np.full((n, 10), 0.1, np.float32))
    (out / "float32.tflite").write_bytes(b"TFL3" + bytes(60))
    write_manifest(out, [{"file": "float32.tflite", "format": "tflite", "mode": "float32",
                          "sha256": sha256_file(out / "float32.tflite"), "size_bytes": 64,
                          "input": {"name": "image", "shape": [1, 32, 32, 3], "layout": "NHWC",
                                    "dtype": "float32"}}], n)
    return out


def write_manifest(out: Path, artifacts: list, n: int) -> None:
    write_json(out / "manifest.json", {
        "schema": "edge-bundle/1", "created": "2026-01-01T00:00:00Z",
        "source_run": {"dir": "runs/tiny", "arch": "seed", "act": "relu", "seed": 0},
        "classes": list(CLASSES),
        "input": {"shape": [32, 32, 3], "layout": "NHWC", "source_dtype": "uint8",
                  "normalization": {"scale": 1 / 255, "offset": 0.0}},
        "test_split": {"file": "test.npz", "sha256": sha256_file(out / "test.npz"), "count": n},
        "reference": {"file": "reference.npz", "sha256": sha256_file(out / "reference.npz"), "key": "probs"},
        "artifacts": artifacts})


def bench_result(path: Path) -> Path:
    """A valid edge-bench/1 document: the repository's own x86 result."""
    path.write_bytes((REPO / "docs" / "results" / "bench-x86-relu.json").read_bytes())
    return path


# --- builders that need TensorFlow, run in a child process ---------------------------------

def _real_run(run: Path, data: Path) -> None:
    """The seed CNN, untrained (the export matrix cases need a loadable model, not a good one)."""
    import tf_keras as keras

    from train.models import build
    keras.utils.set_random_seed(0)
    run.mkdir(parents=True, exist_ok=True)
    build("seed", "tanhexp").save(run / "model.keras")
    write_json(run / "config.json", run_config(data))
    write_json(run / "metrics.json", {"test_accuracy": 0.1, "epochs": 1})


def _real_bundle(out: Path) -> None:
    """A bundle whose float32.tflite really runs: a tiny conv net, reference from Keras."""
    import tensorflow as tf
    import tf_keras as keras
    out.mkdir(parents=True, exist_ok=True)
    x, y = images(20, 4)
    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3), name="image")
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu")(inp))
    model = keras.Model(inp, keras.layers.Dense(10, activation="softmax")(h))
    blob = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    (out / "float32.tflite").write_bytes(blob)
    np.savez(out / "test.npz", x=x, y=y)
    np.savez(out / "reference.npz", probs=model.predict(x / 255.0, verbose=0).astype(np.float32))
    write_manifest(out, [{"file": "float32.tflite", "format": "tflite", "mode": "float32",
                          "sha256": sha256_file(out / "float32.tflite"), "size_bytes": len(blob),
                          "input": {"name": "image", "shape": [1, 32, 32, 3], "layout": "NHWC",
                                    "dtype": "float32"}}], len(y))


BUILDERS = {"real-run": _real_run, "real-bundle": _real_bundle}


def build_in_child(kind: str, *paths: Path) -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "tools.faults.fixtures", kind, *map(str, paths)],
                       capture_output=True, text=True, env=env, cwd=REPO)
    if r.returncode:
        raise RuntimeError(f"building {kind} failed: {r.stderr.strip()[-2000:]}")


if __name__ == "__main__":
    BUILDERS[sys.argv[1]](*map(Path, sys.argv[2:]))
