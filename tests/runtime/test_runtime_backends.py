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
