"""runtime.bench --model on a third-party NCHW ONNX classifier with dynamic image dims:
--input-shape fixes them, --layout and the normalization options reach the backend. The model
is built with onnx.helper (no TensorFlow) and its answers checked against numpy."""
import json
import subprocess
import sys

import numpy as np
import pytest


def _nchw_dynamic(path, channels=3, classes=4):
    """x [-1, 3, H, W] -> Softmax(Gemm(GlobalAveragePool(Conv 1x1 (x)))), every dim but C dynamic."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    w = rng.normal(0, 1, (8, channels, 1, 1)).astype(np.float32)
    g = rng.normal(0, 1, (8, classes)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("GlobalAveragePool", ["c"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]), helper.make_node("Gemm", ["f", "g"], ["l"]),
             helper.make_node("Softmax", ["l"], ["y"], axis=1)]
    graph = helper.make_graph(nodes, "third_party", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", channels, "h", "w"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", classes])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(g, "g")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return w, g


def _numpy(x_nchw, w, g):
    c = np.einsum("nchw,kc->nkhw", x_nchw, w[:, :, 0, 0]).mean((2, 3)) @ g
    e = np.exp(c - c.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _bench(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "runtime.bench", "--no-progress", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_input_shape_runs_a_dynamic_nchw_model(tmp_path):
    _nchw_dynamic(tmp_path / "m.onnx")
    r = _bench("--model", str(tmp_path / "m.onnx"), "--input-shape", "1,3,48,40", "--runs", "20",
               "--json", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    row = json.loads((tmp_path / "r.json").read_text())["rows"][0]
    assert row["error"] is None and row["input_layout"] == "NCHW" and row["input_shape"] == [-1, 3, -1, -1]
    for key in ("latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "load_ms", "peak_rss_mb"):
        assert row[key] is not None and row[key] > 0, key


def test_without_input_shape_the_error_says_what_to_pass(tmp_path):
    _nchw_dynamic(tmp_path / "m.onnx")
    r = _bench("--model", str(tmp_path / "m.onnx"), "--runs", "5", "--json", str(tmp_path / "r.json"))
    assert r.returncode == 1
    row = json.loads((tmp_path / "r.json").read_text())["rows"][0]
    assert "--input-shape" in row["error"] and "\n" not in row["error"]


@pytest.mark.parametrize("args,needle", [
    (["--input-shape", "1,3,48"], "4 positive dims"), (["--input-shape", "1,x,2,2"], "integers"),
    (["--mean", "0.5,0.5,0.5"], "--mean and --std go together"), (["--layout", "CHWN"], "invalid choice"),
])
def test_bad_input_options_are_one_line(tmp_path, args, needle):
    _nchw_dynamic(tmp_path / "m.onnx")
    r = _bench("--model", str(tmp_path / "m.onnx"), *args)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], r.stderr


def test_layout_and_mean_std_reach_the_backend(tmp_path):
    from runtime.measure import BenchConfig, run_bench
    w, g = _nchw_dynamic(tmp_path / "m.onnx")
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    from runtime.backends import normalization_from  # the same code the bench CLI uses
    norm = normalization_from(mean=mean, std=std)
    cfg = BenchConfig(models=[str(tmp_path / "m.onnx")], input_shape=[1, 3, 16, 16], normalization=norm,
                      runs=3, warmup=0, isolate=False, layout="NCHW")
    res = run_bench(cfg)
    probs = next(iter(res.probs.values()))
    from runtime.measure import SYNTHETIC_SEED
    x = np.random.default_rng(SYNTHETIC_SEED).integers(0, 256, (len(probs), 16, 16, 3), dtype=np.uint8)
    want = _numpy(((x / 255.0 - mean) / std).transpose(0, 3, 1, 2), w, g)
    np.testing.assert_allclose(probs, want, atol=1e-5)
    # a fixed dim that --input-shape contradicts is the model's error, on its row
    bad = run_bench(BenchConfig(models=[str(tmp_path / "m.onnx")], input_shape=[1, 4, 16, 16], runs=3,
                                warmup=0, isolate=False))
    assert "does not fit" in bad.doc["rows"][0]["error"]
