"""Session fixtures for the export tests: a real seed model trained for a few seconds on a tiny
synthetic image-folder dataset, saved as a run folder the way `python -m train` lays it out,
and one bundle exported from it (every tflite and onnx mode) that most tests inspect.

EDGECNN_CACHE points at a temporary folder for the whole session, so the real data cache is
never touched (the repo-wide autouse fixture only covers function scope).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tools.faults.kill_targets import synthetic  # noqa: F401  (test modules import it from here)
from tools.faults.kill_targets import write_imagefolder as _write_imagefolder

REPO = Path(__file__).resolve().parents[2]
N_TRAIN, N_TEST, VAL = 240, 80, 40  # per split, all 10 classes; val carved from train
CALIB = 40


def write_imagefolder(root: Path) -> Path:
    return _write_imagefolder(root, N_TRAIN, N_TEST)


def make_run(run: Path, data: Path, act: str, epochs: int) -> Path:
    """model.keras + config.json + metrics.json, as train/loop.py writes them."""
    import tf_keras as keras

    from runtime.fileio import write_json
    from train.config import TrainConfig
    from train.data import load
    from train.models import build

    cfg = TrainConfig(act=act, arch="seed", epochs=max(epochs, 1), data=str(data), val_size=VAL, seed=0,
                      out=str(run), verbose=0)
    s = load(cfg.data, cfg.val_size, cfg.seed)
    keras.utils.set_random_seed(0)
    model = build("seed", act)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", ["accuracy"])
    if epochs:
        model.fit(s.x_train / 255.0, s.y_train, epochs=epochs, batch_size=32, verbose=0)
    _, acc = model.evaluate(s.x_test / 255.0, s.y_test, verbose=0)
    run.mkdir(parents=True)
    model.save(run / "model.keras")
    write_json(run / "config.json", {**cfg.to_dict(), "data_source": s.source})
    write_json(run / "metrics.json", {"test_accuracy": round(float(acc), 6), "arch": "seed", "act": act,
                                      "seed": 0, "epochs": epochs})
    return run


def run_cli(*args) -> int:
    from export.__main__ import main
    return main([str(a) for a in args])


@pytest.fixture(scope="session")
def bundle(tanhexp_run, tmp_path_factory) -> Path:
    """tflite (every mode) then onnx (every mode) into one folder, through the CLI's main()."""
    out = tmp_path_factory.mktemp("bundle") / "export"
    common = ["--run", tanhexp_run, "--out", out, "--calib-size", CALIB, "--parity-batch", 32]
    assert run_cli("--format", "tflite", *common, "--qat-epochs", 1) == 0
    assert run_cli("--format", "onnx", *common) == 0
    return out


@pytest.fixture(scope="session")
def manifest(bundle) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def subprocess_env(**extra) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


PY = sys.executable
