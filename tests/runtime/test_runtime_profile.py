"""`python -m runtime.profile`: per-op time of one model, on the device itself."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.runtime.rt_helpers import run_cli
from runtime.profile import blocks


def test_blocks_cut_at_convolutions_and_anchors():
    ops = ["CONV_2D", "SUB", "ELU", "MUL", "MAX_POOL_2D", "CONV_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    p50 = [10, 11, 12, 15, 16, 40, 41, 45, 46]  # seconds; costs are differences at block ends
    got = [(b["block"], b["ops"], round(b["us"] / 1e6, 9)) for b in blocks(ops, p50)]
    assert got == [("CONV_2D", "CONV_2D", 10), ("activation", "SUB ELU MUL", 5),
                   ("MAX_POOL_2D", "MAX_POOL_2D", 1), ("CONV_2D", "CONV_2D", 24),  # no activation: fused
                   ("RESHAPE", "RESHAPE", 1), ("FULLY_CONNECTED", "FULLY_CONNECTED", 4),
                   ("SOFTMAX", "SOFTMAX", 1)]
    assert sum(b["us"] for b in blocks(ops, p50)) == pytest.approx(46e6)  # telescopes to the whole model


@pytest.mark.parametrize("name", ["float32.tflite", "int8.tflite"])
def test_tflite_prefixes_compute_the_full_models_intermediates(tiny_bundle, tmp_path, name):
    """Prefix k must compute exactly what the whole model holds after op k: checked against the
    full interpreter's own intermediate tensors (preserved), not against another prefix."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from runtime.profile import tflite_prefixes
    plain = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES  # a delegate would hide the ops' tensors
    full = Interpreter(model_path=str(tiny_bundle / name), experimental_preserve_all_tensors=True,
                       experimental_op_resolver_type=plain)
    full.allocate_tensors()
    d = full.get_input_details()[0]
    x = np.random.default_rng(1).integers(-128, 127, d["shape"]).astype(d["dtype"]) \
        if d["dtype"] != np.float32 else np.random.default_rng(1).random(d["shape"], np.float32)
    full.set_tensor(d["index"], x)
    full.invoke()
    ops = full._get_ops_details()
    pre = tflite_prefixes(tiny_bundle / name, tmp_path)
    assert [op for op, _ in pre] == [o["op_name"] for o in ops]
    for (_, f), o in zip(pre, ops):
        it = Interpreter(model_path=str(f), experimental_op_resolver_type=plain)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        got = it.get_tensor(it.get_output_details()[0]["index"])
        np.testing.assert_array_equal(got, full.get_tensor(int(o["outputs"][0])))


def test_profile_onnx_lists_the_optimized_graphs_nodes(tiny_bundle):
    from runtime.profile import profile
    doc = profile(tiny_bundle / "float32.onnx", runs=20)
    ops = {r["block"] for r in doc["rows"]}
    assert "Conv" in ops or "FusedConv" in ops
    assert all(r["us"] >= 0 for r in doc["rows"]) and doc["total_us"] > 0
    assert doc["schema"] == "edge-profile/1" and doc["settings"]["method"] == "onnxruntime profiler"


def test_profile_cli_json_and_bad_input(tiny_bundle, tmp_path):
    out = tmp_path / "p.json"
    r = run_cli("runtime.profile", tiny_bundle / "int8.tflite", "--runs", "20", "--json", out)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["settings"]["method"] == "prefix models" and doc["rows"][0]["block"] == "CONV_2D"
    assert "| CONV_2D |" in r.stdout
    assert sum(r_["share"] for r_ in doc["rows"]) == pytest.approx(100)
    for args, msg in [((tmp_path / "none.tflite",), "error: model not found"),
                      ((out,), "not a .tflite or .onnx file"),
                      ((tiny_bundle / "int8.tflite", "--runs", "0"), "must be >= 1"),
                      ((tiny_bundle / "int8.tflite", "--json", tmp_path), "cannot write")]:
        r = run_cli("runtime.profile", *args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and msg in r.stderr, r.stderr
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    r = run_cli("runtime.profile", bad, "--json", tmp_path / "q.json")
    assert r.returncode == 2 and "not a TFLite model" in r.stderr and not (tmp_path / "q.json").exists()
