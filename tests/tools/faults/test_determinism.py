"""Determinism: `--deterministic` gives bit-identical weights for the same seed
across processes on CPU, and different weights for another seed; ONNX files are byte-identical
whatever the per-process string hashing. `python -m tools.faults.determinism` measures the rest
(docs/results/determinism-x86.json, docs/faults-kill.md)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tools.faults.kill_checks import keras_weights

REPO = Path(__file__).resolve().parents[3]

# Several runs in one process (one TensorFlow start each process), as the CLI runs them.
TRAIN = r"""
import sys
from train.config import TrainConfig
from train.loop import train
for spec in sys.argv[1:]:
    out, seed = spec.split("=")
    train(TrainConfig(act="tanhexp", epochs=2, batch_size=20, val_size=40, seed=int(seed), out=out,
                      verbose=0, deterministic=True))
"""


def _train(tmp_path, data, *specs):
    env = {**os.environ, "EDGECNN_DATA": str(data), "EDGECNN_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("PYTHONHASHSEED", None)
    r = subprocess.run([sys.executable, "-c", TRAIN, *specs], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]


def _same(a: Path, b: Path) -> bool:
    wa, wb = keras_weights(a / "model.keras"), keras_weights(b / "model.keras")
    return len(wa) == len(wb) and all(x.dtype == y.dtype and x.tobytes() == y.tobytes() for x, y in zip(wa, wb))


def test_deterministic_training_same_seed_same_weights_other_seed_other_weights(tmp_path, tiny_folder):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    _train(tmp_path, tiny_folder, f"{a}=0")
    _train(tmp_path, tiny_folder, f"{b}=0", f"{c}=1")
    assert _same(a, b), "two --deterministic runs with seed 0 gave different weights"
    assert not _same(a, c), "seeds 0 and 1 gave the same weights"
    # Training moved the weights: identical weights are not just identical initializations.
    init_bias = keras_weights(a / "model.keras")[1]
    assert np.abs(init_bias).max() > 0


def _onnx_model(init_order):
    from onnx import TensorProto, helper, numpy_helper
    inits = {"zz_scale": numpy_helper.from_array(np.full((1, 4), 2.0, np.float32), "zz_scale"),
             "aa_offset": numpy_helper.from_array(np.full((1, 4), 1.0, np.float32), "aa_offset")}
    nodes = [helper.make_node("Add", ["x", "aa_offset"], ["mid"]), helper.make_node("Mul", ["mid", "zz_scale"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
                          initializer=[inits[k] for k in init_order])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_onnx_tidy_is_independent_of_initializer_order():
    # ORT's quantizers list initializers in set order (Python's per-process string hashing):
    # before the fix two exports of one model differed in bytes. tidy() now orders by first use.
    import onnx  # noqa: F401
    from export.onnx import tidy
    a = tidy(_onnx_model(["zz_scale", "aa_offset"])).SerializeToString()
    b = tidy(_onnx_model(["aa_offset", "zz_scale"])).SerializeToString()
    assert a == b
    m = tidy(_onnx_model(["zz_scale", "aa_offset"]))
    assert [i.name for i in m.graph.initializer] == ["t0", "t2"]  # aa_offset first used, then mid, zz_scale
    import onnxruntime as ort
    y = ort.InferenceSession(a, providers=["CPUExecutionProvider"]).run(None, {"x": np.ones((1, 4), np.float32)})[0]
    np.testing.assert_array_equal(y, np.full((1, 4), 4.0, np.float32))
