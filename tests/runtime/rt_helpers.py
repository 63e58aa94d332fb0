"""Helpers for the runtime tests: build a tiny bundle, run the CLIs, block imports.

A uniquely named module (not conftest) so that `from rt_helpers import ...` cannot pick up
another test directory's conftest. TensorFlow is used here, in the tests, to make models;
runtime/ itself never imports it. The tiny model is trained for a few seconds on images
whose class sets their tint, so its outputs are confident and int8 vs float agreement
means something.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]

from runtime.fileio import sha256_file, write_json

N_IMAGES = 300


def synthetic_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    tint = np.random.default_rng(123).uniform(30, 225, (10, 3))
    x = tint[y][:, None, None, :] + rng.normal(0, 25, (n, 32, 32, 3))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8), y.astype(np.int64)


def build_tiny_bundle(out: Path, n: int = N_IMAGES, act: str = "relu") -> Path:
    """float32.tflite, int8.tflite, float32.onnx + test/reference npz + manifest (edge-bundle/1)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tf_keras as keras
    import tf2onnx

    out.mkdir(parents=True, exist_ok=True)
    x, y = synthetic_images(n)
    xf = x.astype(np.float32) / 255.0
    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3), name="image")
    h = keras.layers.Conv2D(4, 3, name="conv")(inp)
    h = keras.layers.ReLU(name="act")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    model = keras.Model(inp, keras.layers.Dense(10, activation="softmax", name="probs")(h))
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    model.fit(xf, y, epochs=40, batch_size=64, verbose=0)
    ref = model.predict(xf, verbose=0).astype(np.float32)

    models = {}
    models["float32.tflite"] = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([xf[i:i + 1]] for i in range(100))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    with warnings.catch_warnings():  # "Statistics for quantized inputs were expected"
        warnings.simplefilter("ignore")
        models["int8.tflite"] = conv.convert()
    proto, _ = tf2onnx.convert.from_keras(
        model, input_signature=[tf.TensorSpec((None, 32, 32, 3), tf.float32, name="image")], opset=17)
    models["float32.onnx"] = proto.SerializeToString()

    for name, blob in models.items():
        (out / name).write_bytes(blob)
    # off-bundle variants: the same network taking NCHW (tf2onnx transposes the input), and
    # a model whose input does not fit 32x32x3 images
    extras = out.parent / "extras"
    extras.mkdir(exist_ok=True)
    nchw, _ = tf2onnx.convert.from_keras(
        model, input_signature=[tf.TensorSpec((None, 32, 32, 3), tf.float32, name="image")],
        opset=17, inputs_as_nchw=["image"])
    (extras / "nchw.onnx").write_bytes(nchw.SerializeToString())
    small = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    (extras / "wrong_shape.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(small).convert())
    np.savez(out / "test.npz", x=x, y=y)
    np.savez(out / "reference.npz", probs=ref)

    def tflite_io(name):
        from ai_edge_litert.interpreter import Interpreter
        it = Interpreter(model_content=models[name])
        spec = lambda d: {"name": d["name"], "shape": [int(v) for v in d["shape"]],
                          "layout": "NHWC", "dtype": np.dtype(d["dtype"]).name,
                          "quantization": {"scale": float(d["quantization"][0]),
                                           "zero_point": int(d["quantization"][1])}}
        return spec(it.get_input_details()[0]), spec(it.get_output_details()[0])

    artifacts = []
    for name in models:
        mode, fmt = name.split(".")
        entry = {"file": name, "format": fmt, "mode": mode, "sha256": sha256_file(out / name),
                 "size_bytes": len(models[name]), "lowering": None}
        if fmt == "tflite":
            entry["input"], entry["output"] = tflite_io(name)
        else:
            entry["input"] = {"name": "image", "shape": [-1, 32, 32, 3], "layout": "NHWC",
                              "dtype": "float32"}
        artifacts.append(entry)
    write_json(out / "manifest.json", {
        "schema": "edge-bundle/1", "created": "2026-01-01T00:00:00Z",
        "source_run": {"dir": "runs/tiny", "arch": "tiny", "act": act, "seed": 0,
                       "keras_test_accuracy": float(np.mean(ref.argmax(1) == y))},
        "classes": [f"c{i}" for i in range(10)],
        "input": {"shape": [32, 32, 3], "layout": "NHWC", "source_dtype": "uint8",
                  "normalization": {"scale": 1 / 255, "offset": 0.0}},
        "test_split": {"file": "test.npz", "sha256": sha256_file(out / "test.npz"), "count": n},
        "reference": {"file": "reference.npz", "sha256": sha256_file(out / "reference.npz"),
                      "key": "probs"},
        "artifacts": artifacts,
    })
    return out


def edit_manifest(bundle: Path, change) -> None:
    m = json.loads((bundle / "manifest.json").read_text())
    change(m)
    write_json(bundle / "manifest.json", m)


BLOCKER = """
import importlib.abc, sys
BLOCKED = set({names!r})
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked for this test: {{name}}", name=name)
        return None
sys.meta_path.insert(0, _Block())
"""


def blocking_env(tmp: Path, names) -> dict:
    """Environment for run_cli in which importing any of `names` raises ImportError, in the
    process and in every child it starts (through a sitecustomize on PYTHONPATH)."""
    d = tmp / ("block-" + "-".join(sorted(names)))
    d.mkdir(parents=True, exist_ok=True)
    (d / "sitecustomize.py").write_text(BLOCKER.format(names=sorted(names)))
    return {"PYTHONPATH": os.pathsep.join([str(d), str(REPO)])}


def run_cli(*args, env=None, cwd=REPO, timeout=300) -> subprocess.CompletedProcess:
    """`python -m runtime.<args>` in a child process, as a user would run it."""
    e = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", *map(str, args)], capture_output=True,
                          text=True, env=e, cwd=cwd, timeout=timeout)


# --- an int8 ONNX model that ONNX Runtime's x86 u8s8 kernels get wrong without VNNI ----------
QDQ_X_SCALE, QDQ_W_SCALE, QDQ_Y_SCALE = 1 / 127, 0.01, 0.3


def saturating_qdq_conv(path: Path, seed: int = 0) -> np.ndarray:
    """Write a QDQ 3x3 conv (NCHW [1,3,8,8] -> [1,2,8,8]) to `path`; return its int8 weights.
    Output channel 0's weights are all +127, so a bright image makes every pair of u8 x s8
    products 255 * 127 * 2 > 32,767: what VPMADDUBSW clamps."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(seed)
    w = np.stack([np.full((3, 3, 3), 127), rng.integers(-127, 128, (3, 3, 3))]).astype(np.int8)
    const = lambda v, name: numpy_helper.from_array(v, name)  # noqa: E731
    g = helper.make_graph([
        helper.make_node("QuantizeLinear", ["x", "xs", "z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "z"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "ws", "z"], ["wd"]),
        helper.make_node("Conv", ["xd", "wd"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("QuantizeLinear", ["c", "ys", "z"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "ys", "z"], ["y"]),
    ], "qdq_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])],
        [const(np.float32(QDQ_X_SCALE), "xs"), const(np.int8(0), "z"), const(w, "w"),
         const(np.float32(QDQ_W_SCALE), "ws"), const(np.float32(QDQ_Y_SCALE), "ys")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(path))
    return w


def qdq_conv_reference(images: np.ndarray, w: np.ndarray) -> np.ndarray:
    """What the QDQ graph above specifies, in numpy: uint8 NHWC images (pixels / 255) -> the
    dequantized int8 outputs, flattened per image in NCHW order."""
    q = lambda v, s: np.clip(np.rint(v / s), -128, 127)  # noqa: E731  (round half to even, as ONNX)
    x = q(images.astype(np.float64) / 255, QDQ_X_SCALE).transpose(0, 3, 1, 2) * QDQ_X_SCALE
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    c = sum(np.einsum("nchw,kc->nkhw", xp[:, :, i:i + 8, j:j + 8], w[:, :, i, j] * QDQ_W_SCALE)
            for i in range(3) for j in range(3))
    return (q(c, QDQ_Y_SCALE) * QDQ_Y_SCALE).reshape(len(images), -1)
