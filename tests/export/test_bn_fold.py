"""Batch norm folds into the convolutions in every exported format and mode.

The reference is independent of the converters: the BN model's weights folded by hand in
numpy into its BN-free twin (same architecture, conv bias instead of BN). The exported BN
model must have exactly the twin's op counts (an unfolded BN would add MUL/ADD, or a
BatchNormalization node in ONNX) and agree with the Keras model like any other export."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.export.conftest import VAL, run_cli

MODES = {"tflite": ["float32", "int8", "qat"], "onnx": ["float32", "int8"]}


def fold(bn_model, twin, eps_attr="epsilon"):
    """Copy bn_model's weights into twin with every conv+BN folded: w' = w g/s, b' = beta - m g/s."""
    for layer in twin.layers:
        src = bn_model.get_layer(layer.name)
        if not layer.weights:
            continue
        if layer.name.startswith("conv"):
            bn = bn_model.get_layer(layer.name.replace("conv", "bn"))
            gamma, beta, mean, var = (w.numpy() for w in bn.weights)
            scale = gamma / np.sqrt(var + getattr(bn, eps_attr))
            layer.set_weights([src.get_weights()[0] * scale, beta - mean * scale])
        else:
            layer.set_weights(src.get_weights())


def save_run(model, run, data_dir, act):
    from runtime.fileio import write_json
    from train.config import TrainConfig
    from train.data import load

    cfg = TrainConfig(act=act, arch="seed", recipe="strong", epochs=1, data=str(data_dir), val_size=VAL,
                      out=str(run), verbose=0)
    s = load(cfg.data, cfg.val_size, cfg.seed)
    run.mkdir(parents=True)
    model.save(run / "model.keras")
    acc = float(np.mean(model.predict(s.x_test / 255.0, verbose=0).argmax(1) == s.y_test))
    write_json(run / "config.json", {**cfg.to_dict(), "data_source": s.source})
    write_json(run / "metrics.json", {"test_accuracy": acc, "arch": "seed", "act": act, "seed": 0, "epochs": 1})
    return s


@pytest.mark.parametrize("act", ["tanhexp"])
def test_batch_norm_folds_in_every_format(act, data_dir, tmp_path):
    import tf_keras as keras

    from train.models import build

    keras.utils.set_random_seed(0)
    bn_model = build("seed", act, batch_norm=True)
    bn_model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    twin = build("seed", act)
    runs = {}
    s = save_run(bn_model, tmp_path / "tmp-probe", data_dir, act)  # loads the data once
    bn_model.fit(s.x_train / 255.0, s.y_train, epochs=2, batch_size=32, verbose=0)  # moving stats != identity
    assert any(not np.allclose(w.numpy(), 1) for w in bn_model.get_layer("bn1").weights[3:])
    fold(bn_model, twin)
    x = s.x_test[:40] / 255.0
    np.testing.assert_allclose(twin.predict(x, verbose=0), bn_model.predict(x, verbose=0), atol=2e-5)

    for name, m in (("bn", bn_model), ("twin", twin)):
        runs[name] = tmp_path / name
        save_run(m, runs[name], data_dir, act)
        for fmt, modes in MODES.items():
            assert run_cli("--format", fmt, "--quant", *modes, "--run", runs[name], "--calib-size", 40,
                           "--qat-epochs", 1, "--parity-batch", 32) == 0
    manifests = {k: json.loads((r / "export" / "manifest.json").read_text()) for k, r in runs.items()}
    twin_ops = {(a["format"], a["mode"]): a["op_counts"] for a in manifests["twin"]["artifacts"]}
    assert len(twin_ops) == 5
    for a in manifests["bn"]["artifacts"]:
        assert not [o for o in a["ops"] if "batchnorm" in o.lower()], a["file"]
        assert a["op_counts"] == twin_ops[(a["format"], a["mode"])], a["file"]
        assert a["op_counts"].get("CONV_2D", a["op_counts"].get("Conv")) == 2
        if a["mode"] == "float32":
            assert a["parity"]["agreement"] == 1.0 and a["parity"]["max_abs_diff"] < 1e-5
    # ONNX Runtime can build its exact x86 int8 kernels for the default export (ORT 1.32 fails to
    # for TanhExp graphs with int8 activations, tests/runtime/test_runtime_onnx_int8.py covers
    # the fallback), and they reproduce export's parity
    from runtime.backends.onnxrt import OnnxBackend, _open, session_options
    (a,) = [a for a in manifests["bn"]["artifacts"] if a["file"] == "int8.onnx"]
    path = runs["bn"] / "export" / "int8.onnx"
    _open(path, session_options(1, "exact")[0])  # raises if the exact kernels cannot be built
    b = OnnxBackend.load(path, layout_hint="NCHW", int8_kernels="exact")
    assert b.int8_arith == "exact"
    acc = float(np.mean(b.run(s.x_test, batch=32).argmax(1) == s.y_test))
    assert abs(acc - a["parity"]["test_accuracy"]) <= 1 / len(s.y_test) + 1e-9
