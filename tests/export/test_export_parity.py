"""Parity: float32 files against an independent Keras reference, and int8 I/O parameters read
from the model itself."""
from __future__ import annotations

import json

import numpy as np
import pytest


def keras_reference(run, x_uint8) -> np.ndarray:
    # independent of export/: load the run's model as the brief says and run it directly
    import tf_keras as keras

    from train.activations import custom_objects
    model = keras.models.load_model(run / "model.keras", custom_objects=custom_objects(), safe_mode=True,
                                    compile=False)
    return model.predict(x_uint8.astype(np.float32) / 255.0, verbose=0)


def bundle_test_split(bundle):
    with np.load(bundle / "test.npz", allow_pickle=False) as z:
        return z["x"], z["y"]


def run_tflite(path, x):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    out = []
    for img in x:  # batch 1, the model's own shape: no resizing in the reference path
        it.set_tensor(i["index"], (img[None].astype(np.float32) / 255.0))
        it.invoke()
        out.append(it.get_tensor(o["index"])[0])
    return np.stack(out)


def run_onnx(path, x):
    import onnxruntime as ort
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: (x.astype(np.float32) / 255.0).transpose(0, 3, 1, 2)})[0]


@pytest.mark.parametrize("name,runner", [("float32.tflite", run_tflite), ("float32.onnx", run_onnx)])
def test_float32_matches_keras(bundle, manifest, tanhexp_run, name, runner):
    x, y = bundle_test_split(bundle)
    ref = keras_reference(tanhexp_run, x)
    probs = runner(bundle / name, x)
    assert np.abs(probs - ref).max() <= 1e-5
    assert (probs.argmax(1) == ref.argmax(1)).all()
    p = next(a for a in manifest["artifacts"] if a["file"] == name)["parity"]
    assert p["agreement"] == 1.0 and p["max_abs_diff"] <= 1e-5 and p["count"] == len(y)
    assert p["test_accuracy"] == pytest.approx(float((ref.argmax(1) == y).mean()), abs=1e-6)


ARTIFACTS = ["float32.tflite", "float16.tflite", "dynamic.tflite", "int8.tflite", "qat.tflite",
             "float32.onnx", "dynamic.onnx", "int8.onnx"]


def device_probs(bundle, entry, x):
    """The file run by runtime.backends directly, as a device would, with the options export
    documents for parity: the bench's defaults for TFLite, the graph unoptimized for ONNX."""
    from runtime.backends import get_backend
    opts = {"optimize": False, "threads": None} if entry["format"] == "onnx" else {}
    b = get_backend(entry["format"]).load(bundle / entry["file"], **opts)
    try:
        return b.run(x, entry["parity"]["batch"]), b.batch
    finally:
        b.close()


def sig3(v: float) -> float:
    return float(f"{v:.3g}")


@pytest.mark.parametrize("name", ARTIFACTS)
def test_parity_is_what_the_device_backend_computes(bundle, manifest, tanhexp_run, name):
    """Every figure in the manifest's parity is recomputed here from runtime.backends'
    predictions on the same file and images: exactly against reference.npz (what export
    compared with), and against a Keras model loaded here as the independent reference."""
    x, y = bundle_test_split(bundle)
    entry = next(a for a in manifest["artifacts"] if a["file"] == name)
    p = entry["parity"]
    probs, used = device_probs(bundle, entry, x)
    assert used == p["batch"] and p["count"] == len(y) == len(probs)
    with np.load(bundle / "reference.npz", allow_pickle=False) as z:
        ref = z["probs"].astype(np.float64)
    diff = np.abs(probs.astype(np.float64) - ref)
    assert p["test_accuracy"] == round(float((probs.argmax(1) == y).mean()), 6)
    assert p["agreement"] == round(float((probs.argmax(1) == ref.argmax(1)).mean()), 6)
    assert (p["mean_abs_diff"], p["max_abs_diff"]) == (sig3(diff.mean()), sig3(diff.max()))
    keras = keras_reference(tanhexp_run, x)  # x / 255 rather than export's x * (1/255): ~1 ulp apart
    assert p["agreement"] == pytest.approx(float((probs.argmax(1) == keras.argmax(1)).mean()), abs=1e-6)
    assert p["max_abs_diff"] == pytest.approx(float(np.abs(probs - keras).max()), rel=0.01, abs=2e-6)


def test_bench_reproduces_tflite_parity(bundle, manifest):
    """`python -m runtime.bench` with its defaults runs TFLite exactly as export's parity did."""
    from runtime.measure import BenchConfig, run_bench
    res = run_bench(BenchConfig(bundle=str(bundle), formats=["tflite"], isolate=False, runs=3, warmup=0))
    by = {a["file"]: a for a in manifest["artifacts"]}
    x, _ = bundle_test_split(bundle)
    assert len(res.doc["rows"]) == 5
    for row in res.doc["rows"]:
        p = by[row["file"]]["parity"]
        assert row["error"] is None and row["accuracy"] == pytest.approx(p["test_accuracy"], abs=1e-6)
        assert sig3(row["max_abs_diff_ref"]) == p["max_abs_diff"]
        np.testing.assert_array_equal(res.probs[row["file"]], device_probs(bundle, by[row["file"]], x)[0])


def test_export_reads_files_back_through_the_backends(bundle, monkeypatch):
    """Export's readers hold no inference loop of their own: predict goes through runtime.backends."""
    from export import onnx, tflite
    from runtime.backends import Backend
    calls = []
    real = Backend.run
    monkeypatch.setattr(Backend, "run", lambda self, images, batch=1: calls.append(self.format) or
                        real(self, images, batch))
    x, _ = bundle_test_split(bundle)
    for reader, name in ((tflite, "int8.tflite"), (onnx, "int8.onnx")):
        reader.predict(bundle / name, x[:5], 4)
    assert calls == ["tflite", "onnx"]


def test_reference_npz_is_the_keras_model(bundle, tanhexp_run):
    x, _ = bundle_test_split(bundle)
    with np.load(bundle / "reference.npz", allow_pickle=False) as z:
        probs = z["probs"]
    assert probs.dtype == np.float32 and probs.shape == (len(x), 10)
    np.testing.assert_allclose(probs, keras_reference(tanhexp_run, x), atol=1e-6)


def test_onnx_float32_has_no_transposes_and_takes_nchw(manifest):
    for a in manifest["artifacts"]:
        if a["format"] == "onnx":
            assert a["input"]["layout"] == "NCHW" and a["input"]["shape"][1:] == [3, 32, 32]
            assert a["transposes"] == a["op_counts"].get("Transpose", 0)
    f32 = next(a for a in manifest["artifacts"] if a["file"] == "float32.onnx")
    assert f32["transposes"] == 0


@pytest.mark.parametrize("name", ["int8.tflite", "qat.tflite"])
def test_int8_manifest_quantization_is_read_from_the_model(bundle, manifest, name):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=str(bundle / name))
    entry = next(a for a in manifest["artifacts"] if a["file"] == name)
    for side, d in (("input", it.get_input_details()[0]), ("output", it.get_output_details()[0])):
        assert entry[side]["dtype"] == "int8" and d["dtype"] == np.int8
        q = entry[side]["quantization"]
        assert (q["scale"], q["zero_point"]) == (pytest.approx(float(d["quantization"][0])), int(d["quantization"][1]))


def test_int8_runner_uses_the_models_scale_not_a_constant(tanhexp_run, tmp_path):
    """Calibrate on half-range images: the input scale becomes ~0.5/255, not 1/255. A runner
    that assumed 1/255 and zero point -128 would feed every pixel at double brightness."""
    from export import tflite
    from export.run import load_model, to_float
    from tests.export.conftest import synthetic
    model = load_model(tanhexp_run / "model.keras")
    x, _ = synthetic(60, 5)
    half = (x // 2).astype(np.uint8)
    path = tmp_path / "half.tflite"
    path.write_bytes(tflite.convert_int8(model, to_float(half)))
    spec = tflite.describe(path)["input"]
    assert spec["quantization"]["scale"] == pytest.approx(0.5 / 255, rel=0.05)
    probs, _ = tflite.predict(path, half, batch=16)
    ref = model.predict(to_float(half), verbose=0)
    assert (probs.argmax(1) == ref.argmax(1)).mean() >= 0.9
    assert np.abs(probs - ref).max() < 0.1
    # and exactly what the interpreter gives when fed with the model's own parameters
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    d, o = it.get_input_details()[0], it.get_output_details()[0]
    s, zp = d["quantization"]
    it.set_tensor(d["index"], np.clip(np.rint(to_float(half[:1]) / s + zp), -128, 127).astype(np.int8))
    it.invoke()
    os_, ozp = o["quantization"]
    manual = (it.get_tensor(o["index"]).astype(np.float32) - ozp) * os_
    np.testing.assert_allclose(probs[:1], manual, atol=1e-6)


def test_parity_check_column_follows_the_thresholds(manifest):
    from export.parity import parity_check, table
    keras_acc = manifest["source_run"]["keras_test_accuracy"]
    f32 = next(a for a in manifest["artifacts"] if a["file"] == "float32.tflite")
    int8 = next(a for a in manifest["artifacts"] if a["file"] == "int8.tflite")
    d = f32["parity"]["max_abs_diff"]
    assert parity_check(f32, keras_acc, max_dp=d).startswith("pass")
    assert parity_check(f32, keras_acc, max_dp=d / 2 if d else -1).startswith("FAIL")
    drop = (keras_acc - int8["parity"]["test_accuracy"]) * 100
    assert parity_check(int8, keras_acc, max_drop_pt=max(drop, 0)).startswith("pass")
    assert parity_check(int8, keras_acc, max_drop_pt=drop - 0.01).startswith("FAIL")
    assert "agree" not in parity_check(int8, keras_acc)  # agreement is reported, never judged
    text = table(manifest)
    assert "parity check" in text and "target" not in text and "MISSED" not in text
    assert all(a["file"] in text for a in manifest["artifacts"])
    json.dumps(manifest)  # plain JSON throughout
