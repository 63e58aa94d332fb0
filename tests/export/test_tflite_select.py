"""Selective quantization (export/tflite_select.py, `--tflite-float-layers`): which converter
nodes a Keras layer owns, and a file whose first convolution really runs in float, checked
against the Keras model's own weights and layer outputs."""
from __future__ import annotations

import json

import numpy as np
import pytest

import tensorflow as tf
import tf_keras as keras

from export.tflite_select import layer_nodes  # noqa: E402
from export.tflite_ranges import calibrated  # noqa: E402
from tests.export.conftest import CALIB, run_cli  # noqa: E402


@pytest.fixture(scope="module")
def calibrated_seed_nets():
    from export.lowering import lowered_copy
    from train.models import build
    keras.utils.set_random_seed(0)
    calib = np.random.default_rng(0).random((20, 32, 32, 3), dtype=np.float32)
    relu = build("seed", "relu")
    tanhexp = lowered_copy(build("seed", "tanhexp"), "elu3")
    return {"relu": calibrated(relu, calib), "tanhexp": calibrated(tanhexp, calib)}


def test_a_layer_owns_its_fused_nodes(calibrated_seed_nets):
    relu, tanhexp = calibrated_seed_nets["relu"], calibrated_seed_nets["tanhexp"]
    # ReLU fuses into the convolution: one node, named after both layers, belongs to each
    (fused,) = layer_nodes(relu, "conv1")
    assert layer_nodes(relu, "act1") == [fused] and "conv1" in fused and "act1" in fused
    # TanhExp's lowering is separate ops: conv1 owns one node, act1 several, none shared
    (conv,) = layer_nodes(tanhexp, "conv1")
    act = layer_nodes(tanhexp, "act1")
    assert len(act) >= 4 and conv not in act
    assert layer_nodes(relu, "image") == []  # the input layer has no operator
    assert layer_nodes(relu, "conv") == []   # a whole path segment, not a prefix


@pytest.fixture(scope="module")
def float_conv1_bundle(relu_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("float-conv1")
    assert run_cli("--format", "tflite", "--quant", "int8", "--run", relu_run, "--out", out,
                   "--calib-size", CALIB, "--parity-batch", 32, "--tflite-float-layers", "conv1") == 0
    return out


def test_first_conv_runs_in_float_against_keras(float_conv1_bundle, relu_run):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from export.opcheck import tflite_ops
    from export.run import load_model
    buf = (float_conv1_bundle / "int8.tflite").read_bytes()
    ops = tflite_ops(buf)
    assert ops[:3] == ["DEQUANTIZE", "CONV_2D", "QUANTIZE"] and ops.count("CONV_2D") == 2
    it = Interpreter(model_content=buf, experimental_preserve_all_tensors=True,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    inp, outp = it.get_input_details()[0], it.get_output_details()[0]
    assert inp["dtype"] == np.int8 and outp["dtype"] == np.int8  # still a drop-in int8 file
    ops_d = it._get_ops_details()
    conv1, conv2 = [o for o in ops_d if o["op_name"] == "CONV_2D"]
    details = {d["index"]: d for d in it.get_tensor_details()}
    assert details[conv1["inputs"][1]]["dtype"] == np.float32  # filter
    assert details[conv2["inputs"][1]]["dtype"] == np.int8
    # the float filter is Keras's kernel itself (HWIO -> OHWI), not a dequantized copy
    model = load_model(relu_run / "model.keras")
    kernel = model.get_layer("conv1").get_weights()[0]
    np.testing.assert_array_equal(it.get_tensor(conv1["inputs"][1]), kernel.transpose(3, 0, 1, 2))
    # and its output is Keras's conv1 + ReLU to float32 rounding, on pixels the int8 input holds exactly
    x = np.random.default_rng(3).integers(0, 256, (1, 32, 32, 3)).astype(np.float32) / 255
    scale, zp = inp["quantization"]
    it.set_tensor(inp["index"], np.clip(np.round(x / scale + zp), -128, 127).astype(np.int8))
    it.invoke()
    want = keras.Model(model.input, model.get_layer("act1").output)(x).numpy()
    np.testing.assert_allclose(it.get_tensor(conv1["outputs"][0]), want, rtol=1e-5, atol=1e-5)


def test_manifest_records_the_float_layers(float_conv1_bundle):
    (entry,) = json.loads((float_conv1_bundle / "manifest.json").read_text())["artifacts"]
    assert entry["mode"] == "int8" and entry["float_layers"] == ["conv1"]
    assert entry["parity"]["agreement"] > 0.5
    cfg = json.loads((float_conv1_bundle / "config.json").read_text())
    assert cfg["tflite_float_layers"] == ["conv1"]


@pytest.mark.parametrize("args,match", [
    (["--format", "tflite", "--tflite-float-layers", "conv9"], "no layer 'conv9' in the model; its layers are image, conv1"),
    (["--format", "tflite", "--quant", "int8", "--tflite-float-layers", "image"], "'image' has no operator of its own"),
    (["--format", "onnx", "--tflite-float-layers", "conv1"], "applies to --format tflite with the int8 mode only"),
    (["--format", "tflite", "--quant", "float32", "--tflite-float-layers", "conv1"], "int8 mode only"),
    (["--format", "tflite", "--tflite-float-layers", "conv1,conv1"], "lists a layer twice: conv1"),
    (["--format", "tflite", "--tflite-float-layers", ","], "names no layer"),
])
def test_bad_float_layers(relu_run, tmp_path, capsys, args, match):
    assert run_cli(*args, "--run", relu_run, "--out", tmp_path / "o", "--calib-size", CALIB) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert match in err[-1] and err[-1].startswith("error:")
    assert not (tmp_path / "o").exists()
