"""export/onnx_qdq.py: the scalar affine nodes around a table op fold into DequantizeLinear and give
what the unfolded graph computes (numpy reference on the same codes); ONNX Runtime then runs
every op in an integer kernel; the exported TanhExp int8.onnx has no float op left."""
from __future__ import annotations

import numpy as np
import pytest

import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from export.onnx_qdq import INT8_GRAPHS, fold_affine, optimized_ops, table_affines


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def _qdq(name, x, scale, zp, nodes, inits):
    """x -> QuantizeLinear -> DequantizeLinear with uint8 codes; returns the dequantized name."""
    inits += [numpy_helper.from_array(np.array(scale, np.float32), f"{name}_s"),
              numpy_helper.from_array(np.array(zp, np.uint8), f"{name}_z")]
    nodes += [helper.make_node("QuantizeLinear", [x, f"{name}_s", f"{name}_z"], [f"{name}_q"], name=f"{name}_Q"),
              helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [f"{name}_dq"],
                               name=f"{name}_DQ")]
    return f"{name}_dq"


def _gate_graph(a: float, b: float, x_range=(-4.0, 3.0)):
    """What quantize_static writes for x * sigmoid(a*x + b) with the Mul/Add left in float."""
    lo, hi = x_range
    s = (hi - lo) / 255
    nodes, inits = [], []
    x = _qdq("x", "input", s, round(-lo / s), nodes, inits)
    inits += [numpy_helper.from_array(np.array(a, np.float32), "a"), numpy_helper.from_array(np.array(b, np.float32), "b")]
    nodes += [helper.make_node("Mul", [x, "a"], ["ax"], name="mul_a"), helper.make_node("Add", ["ax", "b"], ["u"], name="add_b")]
    ulo, uhi = a * lo + b, a * hi + b
    u = _qdq("u", "u", (uhi - min(ulo, 0)) / 255, round(-min(ulo, 0) / ((uhi - min(ulo, 0)) / 255)), nodes, inits)
    nodes.append(helper.make_node("Sigmoid", [u], ["g"], name="sigmoid"))
    g = _qdq("g", "g", 1 / 255, 0, nodes, inits)
    nodes.append(helper.make_node("Mul", [x, g], ["y"], name="gate"))
    y = _qdq("y", "y", (hi + 1) / 255, round(1 / ((hi + 1) / 255)), nodes, inits)
    vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 256])
    graph = helper.make_graph(nodes, "g", [vi("input")], [vi(y)], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), s, round(-lo / s)


def _run(model, x, optimize=False):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


@pytest.mark.parametrize("a,b", [(1.73692, 1.2675), (3.04296, 1.01082), (0.5, -0.3)])
def test_folded_gate_reads_the_codes_on_a_scaled_grid(a, b):
    model, s, z = _gate_graph(a, b)
    # every one of x's 256 codes once
    x = (s * (np.arange(256) - z)).astype(np.float32)[None]
    assert fold_affine(model) == 1
    ops = [n.op_type for n in model.graph.node]
    assert "Add" not in ops and ops.count("Mul") == 1 and ops.count("DequantizeLinear") == 4  # x, x folded, g, y
    onnx.checker.check_model(model)
    got = _run(model, x)
    # numpy on the same codes: the table reads x on the grid (a*s, z - b/(a*s)), zero point rounded
    ref_gate = np.round(_sig(a * s * (np.arange(256) - z) + b) * 255) / 255
    ref = x[0] * ref_gate
    y_step = (3.0 + 1) / 255
    zp_shift = 0.5 * a * s * 0.25 * np.abs(x[0])  # half a code of the table's input, times sigmoid' <= 1/4
    assert np.all(np.abs(got[0] - ref) <= y_step + zp_shift + 1e-6)


def test_onnx_runtime_runs_the_folded_gate_in_integer_kernels(tmp_path):
    model, *_ = _gate_graph(1.73692, 1.2675)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    path = tmp_path / "before.onnx"
    onnx.save(model, str(path))
    before = optimized_ops(path, so)
    assert before["float_ops"] == {"Add": 1, "Mul": 1}, before  # the affine pair runs in float
    fold_affine(model)
    onnx.save(model, str(path))
    after = optimized_ops(path, ort.SessionOptions())
    assert after["float_ops"] == {} and after["ops"]["QLinearSigmoid"] == 1 and after["ops"]["QLinearMul"] == 1, after


def test_a_narrow_positive_range_is_widened_to_hold_the_zero_point():
    model, s, z = _gate_graph(1.73692, 1.2675, x_range=(0.0, 0.5))  # -b/a = -0.73 is off x's grid
    assert fold_affine(model) == 1
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    s2, z2 = float(inits["x_s"]), int(inits["x_z"])
    assert s2 > s and s2 * (0 - z2) <= -1.2675 / 1.73692 + s2 and s2 * (255 - z2) >= 0.5 - s2
    x = np.linspace(0, 0.5, 256, dtype=np.float32)[None]
    got = _run(model, x)
    assert np.all(np.abs(got - x * _sig(1.73692 * x + 1.2675)) <= 2 * s2 + 4 / 255)


def test_a_negative_scale_is_left_in_float():
    model, *_ = _gate_graph(-1.0, 0.5)
    before = [n.op_type for n in model.graph.node]
    assert fold_affine(model) == 0 and [n.op_type for n in model.graph.node] == before


def test_table_affines_names_the_chains_around_table_ops_only():
    vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4])
    inits = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("a", 2.0), ("b", 1.0), ("c", 0.3))]
    nodes = [helper.make_node("Mul", ["x", "a"], ["ax"], name="mul_a"),
             helper.make_node("Add", ["ax", "b"], ["u"], name="add_b"),
             helper.make_node("LeakyRelu", ["u"], ["l"], name="lrelu"),
             helper.make_node("Mul", ["l", "c"], ["lc"], name="mul_c"),
             helper.make_node("Sigmoid", ["lc"], ["g"], name="sigmoid"),
             helper.make_node("Mul", ["x", "g"], ["y"], name="gate"),   # x * g: not a scalar
             helper.make_node("Mul", ["y", "c"], ["z"], name="after")]  # not next to a table op
    m = helper.make_model(helper.make_graph(nodes, "g", [vi("x")], [vi("z")], initializer=inits))
    assert table_affines(m) == ["add_b", "mul_a", "mul_c"]
    assert set(INT8_GRAPHS) == {"quantize", "float-island", "table"}


def test_exported_int8_onnx_runs_integer_kernels_only(bundle, manifest):
    """The shipped TanhExp int8.onnx: the manifest's record of ONNX Runtime's optimized graph
    has no float op, and the file itself no Exp, Tanh or Elu."""
    from export.lowering import LOWERINGS
    (a,) = [a for a in manifest["artifacts"] if a["file"] == "int8.onnx"]
    assert LOWERINGS[a["lowering"]].onnx_int8 == a["quantization_scheme"]["graph"] == "table"
    assert a["optimized_graph"]["float_ops"] == {}, a["optimized_graph"]
    assert a["optimized_graph"]["ops"]["QLinearConv"] == 2 and a["optimized_graph"]["ops"]["QLinearSigmoid"] >= 2
    ops = {n.op_type for n in onnx.load(str(bundle / "int8.onnx")).graph.node}
    assert not ops & {"Exp", "Tanh", "Elu"}


def test_fitted_lowering_is_recorded_and_runs_integer_kernels_only(tanhexp_run, tmp_path, monkeypatch):
    """With `lrsgate_fit` as the ONNX int8 choice each TanhExp layer's constants are fitted on the
    calibration sample, written to the manifest, and the graph still has no float op."""
    import onnx

    from export import lowering as L
    from export.api import export
    from export.config import ExportConfig
    monkeypatch.setitem(L.FORMAT_DEFAULTS, ("onnx", "int8"), "lrsgate_fit")
    m = export(ExportConfig(format="onnx", quant=["int8"], run=str(tanhexp_run), out=str(tmp_path / "b"),
                            calib_size=40), log=lambda s: None)
    (a,) = m["artifacts"]
    assert a["lowering"] == "lrsgate_fit" and len(a["lowering_fit"]) == 2
    fits = [f["params"] for f in a["lowering_fit"].values()]
    assert fits[0] != fits[1] and all(f != list(L.LRSGATE) for f in fits)  # each layer its own
    assert a["optimized_graph"]["float_ops"] == {}, a["optimized_graph"]
    assert not {n.op_type for n in onnx.load(str(tmp_path / "b" / "int8.onnx")).graph.node} & {"Exp", "Tanh", "Elu"}
