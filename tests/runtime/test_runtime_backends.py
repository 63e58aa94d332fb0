"""Each backend on the tiny models: right answers, parameters read from the model."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.runtime.rt_helpers import blocking_env, edit_manifest, run_cli
from runtime.backends import get_backend
from runtime.bundle import load_reference, load_test
from runtime.errors import MissingRuntime, ModelError
from runtime.measure import BenchConfig, run_bench


@pytest.fixture(scope="module")
def data(tiny_bundle):
    x, y = load_test(tiny_bundle / "test.npz")
    return x, y, load_reference(tiny_bundle / "reference.npz", "probs", len(x))


@pytest.mark.parametrize("name", ["float32.tflite", "float32.onnx", "../extras/nchw.onnx"])
@pytest.mark.parametrize("batch", [1, 32])
def test_float_models_match_keras(tiny_bundle, data, name, batch):
    x, _, ref = data
    path = tiny_bundle / name
    b = get_backend("onnx" if name.endswith(".onnx") else "tflite").load(path)
    assert b.layout == ("NCHW" if "nchw" in name else "NHWC")
    probs = b.run(x[:100], batch=batch)
    assert probs.dtype == np.float32 and probs.shape == (100, 10)
    assert np.abs(probs - ref[:100]).max() <= 1e-5


def test_int8_reads_quantization_from_the_model(tiny_bundle, data):
    x, y, ref = data
    b = get_backend("tflite").load(tiny_bundle / "int8.tflite")
    m = json.loads((tiny_bundle / "manifest.json").read_text())
    q = next(a for a in m["artifacts"] if a["file"] == "int8.tflite")
    assert np.dtype(b.input.dtype) == np.int8 and b.output.quantized
    assert b.input.scale == pytest.approx(q["input"]["quantization"]["scale"])
    assert b.input.zero_point == q["input"]["quantization"]["zero_point"]
    probs = b.run(x, batch=32)
    assert np.mean(probs.argmax(1) == ref.argmax(1)) >= 0.97
    assert np.abs(probs - ref).max() < 0.15  # a few output quantization steps of 1/256


def test_nonsense_manifest_quantization_changes_nothing(tiny_bundle, bundle_copy):
    def scramble(m):
        for a in m["artifacts"]:
            for io in ("input", "output"):
                if "quantization" in a.get(io, {}):
                    a[io]["quantization"] = {"scale": 123.0, "zero_point": 77}
    edit_manifest(bundle_copy, scramble)
    # the hashes cover model files, not the manifest, so the models still verify
    cfg = dict(runs=3, warmup=0, isolate=False, modes=["int8"])
    good = run_bench(BenchConfig(bundle=str(tiny_bundle), **cfg))
    bad = run_bench(BenchConfig(bundle=str(bundle_copy), **cfg))
    (g,), (b,) = good.doc["rows"], bad.doc["rows"]
    assert b["error"] is None and b["accuracy"] == g["accuracy"]
    assert np.array_equal(good.probs["int8.tflite"], bad.probs["int8.tflite"])


def test_wrong_image_shape_is_a_model_error(tiny_bundle, data):
    b = get_backend("tflite").load(tiny_bundle.parent / "extras" / "wrong_shape.tflite")
    with pytest.raises(ModelError, match="does not fit images"):
        b.check_images(data[0].shape[1:])


@pytest.mark.parametrize("content", [b"", b"garbage" * 50, "truncate"])
def test_corrupt_tflite_is_a_model_error(tiny_bundle, tmp_path, content):
    good = (tiny_bundle / "float32.tflite").read_bytes()
    p = tmp_path / "bad.tflite"
    p.write_bytes(good[: len(good) // 2] if content == "truncate" else content)
    with pytest.raises(ModelError) as e:
        get_backend("tflite").load(p)
    assert "\n" not in str(e.value)


def test_corrupt_onnx_is_a_model_error(tmp_path):
    p = tmp_path / "bad.onnx"
    p.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(ModelError, match="ONNX Runtime cannot load it"):
        get_backend("onnx").load(p)


def test_unknown_format():
    with pytest.raises(ModelError, match="no backend for format"):
        get_backend("pt")


def test_missing_runtime_names_the_pip_package(tiny_bundle, tmp_path, monkeypatch):
    import sys
    for name in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime",
                 "tflite_runtime.interpreter"):
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: ImportError
    monkeypatch.delitem(sys.modules, "runtime.backends.litert", raising=False)
    with pytest.raises(MissingRuntime, match="pip install ai-edge-litert$"):
        get_backend("tflite")

    # and end to end: TFLite rows say what to install, ONNX still runs, exit 1
    env = blocking_env(tmp_path, {"ai_edge_litert", "tflite_runtime"})
    out = tmp_path / "r.json"
    r = run_cli("runtime.bench", "--bundle", tiny_bundle, "--runs", "3", "--warmup", "0",
                "--limit", "20", "--json", out, "--no-progress", env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr + r.stdout
    rows = {x["file"]: x for x in json.loads(out.read_text())["rows"]}
    assert rows["float32.onnx"]["error"] is None
    for f in ("float32.tflite", "int8.tflite"):
        assert rows[f]["error"] == "no runtime for tflite models on this device: pip install ai-edge-litert"
        assert rows[f]["latency_ms_p50"] is None


# --- the I/O definitions export's parity shares with the device ---------------------------

def test_layout_is_read_from_the_shape():
    from runtime.backends import guess_layout
    assert guess_layout((None, 32, 32, 3)) == guess_layout((1, 28, 28, 1)) == "NHWC"
    assert guess_layout((None, 3, 32, 32)) == guess_layout((None, 1, 28, 28)) == "NCHW"
    assert guess_layout((None, 32, 32, 4)) == "NHWC" and guess_layout((None, 4, 32, 32)) == "NCHW"  # RGBA
    assert guess_layout((1, 3, 3, 3)) == "NHWC" and guess_layout((1, 3, 3, 3), "NCHW") == "NCHW"  # a tie
    with pytest.raises(ModelError, match="rank 2"):
        guess_layout((None, 10))


def test_normalize_and_quantize_are_float32_as_keras_and_the_converter_see_them():
    from runtime.backends import NORMALIZATION, dequantize, normalize, quantize
    u = np.arange(256, dtype=np.uint8)
    x = normalize(u)
    assert x.dtype == np.float32 and np.array_equal(x, u.astype(np.float32) * np.float32(1 / 255))
    assert NORMALIZATION == (1 / 255, 0.0)
    # a half-range grid (a calibration on dark images): every odd pixel sits near a rounding
    # tie, where float32 and a fused float64 affine map can disagree by one level
    s = float(np.float32(2 / 255))
    q = quantize(x, np.int8, s, -128)
    assert q.dtype == np.int8 and q.min() == -128 and q.max() <= 0
    np.testing.assert_array_equal(q, np.clip(np.rint(x / np.float32(s) - 128), -128, 127).astype(np.int8))
    np.testing.assert_allclose(dequantize(q, s, -128), x, atol=s / 2 + 1e-7)
    assert quantize(np.float32([-1.0, 9.0]), np.uint8, 0.01, 0).tolist() == [0, 255]  # clipped to the dtype


def test_prepare_takes_normalized_floats_as_given(tiny_bundle, data):
    from runtime.backends import normalize
    x = data[0][:8]
    for name in ("int8.tflite", "float32.tflite", "../extras/nchw.onnx"):
        b = get_backend("onnx" if name.endswith(".onnx") else "tflite").load(tiny_bundle / name)
        np.testing.assert_array_equal(b.prepare(x), b.prepare(normalize(x)))
        np.testing.assert_array_equal(b.run(x, 4), b.run(normalize(x), 4))


def test_litert_loads_bytes_and_runs_without_xnnpack(tiny_bundle, data):
    x, _, ref = data
    path = tiny_bundle / "float32.tflite"
    cls = get_backend("tflite")
    from_file = cls.load(path).run(x[:50], 16)
    np.testing.assert_array_equal(cls.load(path.read_bytes()).run(x[:50], 16), from_file)
    builtin = cls.load(path, xnnpack=False).run(x[:50], 16)  # TFLite's own kernels
    assert np.abs(builtin - ref[:50]).max() <= 1e-5 and np.abs(builtin - from_file).max() <= 1e-5
    with pytest.raises(ModelError, match="not a TFLite model"):
        cls.load(b"garbage" * 50)


def test_onnx_unoptimized_graph_is_exact_int8_by_construction(tiny_bundle, data):
    """optimize=False (export's parity) fuses nothing, so there are no int8 kernels to saturate."""
    x, _, ref = data
    b = get_backend("onnx").load(tiny_bundle / "float32.onnx", threads=None, optimize=False, int8_kernels="fast")
    assert b.int8_arith == "exact"
    assert np.abs(b.run(x[:50], 16) - ref[:50]).max() <= 1e-5
