"""TFLite percentile ranges (export/tflite_ranges.py) against independent references: the
one-step converter for min/max, numpy's order statistics of the Keras layer's own outputs for
the percentiles, and the int8 file's scale and zero point read back from the file."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tensorflow as tf
import tf_keras as keras

from export.tflite_ranges import calibrated, percentile_ranges, quantize, recorded, tails  # noqa: E402


@pytest.fixture(scope="module")
def model_and_calib():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.layers.Input((32, 32, 3)),
                          keras.layers.Conv2D(8, 3, activation="relu", name="convA"),
                          keras.layers.MaxPooling2D(),
                          keras.layers.Conv2D(8, 3, name="convB"),  # no activation: both signs
                          keras.layers.Flatten(),
                          keras.layers.Dense(10, activation="softmax", name="head")])
    rng = np.random.default_rng(0)
    calib = rng.random((120, 32, 32, 3), dtype=np.float32)
    return m, calib, calibrated(m, calib)


def _named(cal: bytes, layer: str) -> tuple[int, str]:
    """(index, name) of the recorded tensor a layer outputs ('sequential/convB/Conv2D1')."""
    from tensorflow.lite.tools import flatbuffer_utils as fu
    g = fu.read_model_from_bytearray(bytearray(cal)).subgraphs[0]
    hits = [(i, g.tensors[i].name.decode()) for i in recorded(cal) if f"/{layer}/" in g.tensors[i].name.decode().split(";")[0]]
    assert len(hits) == 1, (layer, hits)
    return hits[0]


def test_percentile_100_is_the_calibrators_min_max(model_and_calib):
    _, calib, cal = model_and_calib
    rec = recorded(cal)
    got = tails(cal, calib, sorted(rec), 100.0, batch=32)  # 120 = 3 full batches + a padded tail
    assert rec.keys() == got.keys() and len(rec) >= 3
    for i in rec:
        np.testing.assert_allclose(got[i], rec[i], rtol=1e-5, atol=1e-6)


def test_tails_are_numpy_order_statistics_of_the_keras_layer(model_and_calib):
    m, calib, cal = model_and_calib
    i, _ = _named(cal, "convB")
    p = 99.0
    values = np.sort(keras.Model(m.input, m.get_layer("convB").output)(calib).numpy().ravel())
    k = math.ceil(len(values) * (100 - p) / 100)
    lo, hi = tails(cal, calib, [i], p, batch=50)[i]
    np.testing.assert_allclose([lo, hi], [values[k - 1], values[-k]], rtol=1e-4, atol=1e-5)
    assert values[0] < lo < 0 < hi < values[-1]  # narrower than min/max on both sides


def test_quantize_of_calibrated_is_the_one_step_conversion(model_and_calib):
    from experiments.lowering_bench import predict
    from export.tflite import convert_int8
    m, calib, cal = model_and_calib
    x = np.random.default_rng(1).random((64, 32, 32, 3), dtype=np.float32)
    np.testing.assert_array_equal(predict(quantize(cal), x, 64), predict(convert_int8(m, calib), x, 64))


def test_int8_scale_and_zero_point_come_from_the_percentile_range(model_and_calib):
    from ai_edge_litert.interpreter import Interpreter
    _, calib, cal = model_and_calib
    from export.opcheck import tflite_ops
    i, name = _named(cal, "convB")
    lo, hi = tails(cal, calib, [i], 99.0)[i]
    cal2, info = percentile_ranges(cal, calib, 99.0)
    assert info["ranges"] == "percentile 99" and 0 < info["median_width_vs_minmax"] < 1
    buf = quantize(cal2)
    assert tflite_ops(buf) == tflite_ops(quantize(cal))  # ranges change, the graph does not
    (scale, zp), = [d["quantization"] for d in Interpreter(model_content=buf).get_tensor_details() if d["name"] == name]
    # int8: 255 steps span [min(lo, 0), max(hi, 0)], 0 exactly representable (zero point rounded)
    assert scale == pytest.approx((hi - lo) / 255, rel=1e-3)
    assert zp == pytest.approx(-128 - lo / scale, abs=0.51)


def test_export_cli_records_percentile_ranges(relu_run, tmp_path):
    """`--tflite-calib-percentile` end to end: the manifest says which ranges the file has, and
    the file's activation scales are never wider than the min/max export's (read from the files)."""
    import json

    from ai_edge_litert.interpreter import Interpreter

    from tests.export.conftest import CALIB, run_cli
    outs = {}
    for name, extra in (("minmax", []), ("pct", ["--tflite-calib-percentile", "99"])):
        out = tmp_path / name
        assert run_cli("--format", "tflite", "--quant", "int8", "--run", relu_run, "--out", out,
                       "--calib-size", CALIB, "--parity-batch", 32, *extra) == 0
        outs[name] = out
    scales = {n: {d["name"]: d["quantization"][0] for d in Interpreter(model_path=str(o / "int8.tflite")).get_tensor_details()
                  if d["dtype"] == np.int8 and d["quantization"][0]}  # per-channel weights report scale 0
              for n, o in outs.items()}
    a, b = scales["minmax"], scales["pct"]
    assert a and a.keys() == b.keys()
    assert all(b[k] <= a[k] * (1 + 1e-6) for k in a)  # never wider (input and output: unchanged)
    assert any(b[k] < a[k] * 0.999 for k in a)
    ranges = {n: json.loads((o / "manifest.json").read_text())["artifacts"][0]["calibration"]["ranges"]
              for n, o in outs.items()}
    assert ranges == {"minmax": "min/max", "pct": "percentile 99"}

