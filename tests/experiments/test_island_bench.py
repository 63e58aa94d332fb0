"""experiments.island_bench: the float-island int8 graph keeps TanhExp's ops in float (builtins only),
and the floored calibration range is what the converted model carries (read back from it)."""
from __future__ import annotations

import numpy as np
import pytest

import tensorflow as tf

from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from experiments.island_bench import FLOAT_OPS, island, set_min  # noqa: E402
from export.tflite_ranges import calibrated  # noqa: E402
from export.opcheck import tflite_ops, violations  # noqa: E402
from train.activations import tanhexp_numpy  # noqa: E402
from train.models import build  # noqa: E402


def _conv2_output(buf: bytes) -> dict:
    it = Interpreter(model_content=buf)
    (t,) = [t for t in it.get_tensor_details() if "conv2/BiasAdd" in t["name"] and len(t["shape"]) == 4]
    return t


@pytest.fixture(scope="module")
def model_and_calib():
    m = build("seed", "tanhexp")
    rng = np.random.default_rng(0)
    # conv2's bias pushed down: its outputs reach well below -2, so a floor of 2 really clips
    w = m.get_layer("conv2").get_weights()
    m.get_layer("conv2").set_weights([w[0] * 4, w[1] - 2.0])
    return m, rng.random((40, 32, 32, 3), dtype=np.float32)


def test_island_keeps_the_formula_in_float_and_builtin(model_and_calib):
    m, calib = model_and_calib
    buf = island(m, calib, floor=None)
    ops = tflite_ops(buf)
    for op in FLOAT_OPS + ["DEQUANTIZE", "QUANTIZE", "CONV_2D", "FULLY_CONNECTED"]:
        assert op in ops, (op, ops)
    assert violations("tflite", ops) == []
    it = Interpreter(model_content=buf)
    assert it.get_input_details()[0]["dtype"] == np.int8 and it.get_output_details()[0]["dtype"] == np.int8


def test_floor_sets_the_conv_range_read_back_from_the_model(model_and_calib):
    m, calib = model_and_calib
    plain, floored = _conv2_output(island(m, calib, None)), _conv2_output(island(m, calib, 2.0))
    scale, zp = floored["quantization"]
    # int8 code -128 is the floor: (-128 - zp) * scale = -2 to one step
    assert abs((-128 - zp) * scale - (-2.0)) <= scale
    assert scale < plain["quantization"][0]  # a narrower range, a finer grid
    # the plain range does reach below the floor, so the test above is not vacuous
    assert (-128 - plain["quantization"][1]) * plain["quantization"][0] < -2.5


def test_set_min_names_a_missing_tensor(model_and_calib):
    m, calib = model_and_calib
    with pytest.raises(ValueError, match="no calibrated tensor"):
        set_min(calibrated(m, calib[:4]), "no-such-layer", -1.0)


def test_floor_error_bound():
    # f(max(x, -L)) - f(x) for x < -L is at most L e^-L: the documented cost of the floor
    x = np.linspace(-40, -4, 10001)
    assert np.max(np.abs(tanhexp_numpy(np.maximum(x, -4.0)) - tanhexp_numpy(x))) <= 4 * np.exp(-4)
