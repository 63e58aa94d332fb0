"""ONNX int8 activation type (ExportConfig.onnx_activations; the CLI always uses uint8): with uint8 ONNX Runtime fuses
TanhExp's convolutions into QLinearConv; with int8 its x86 optimizer leaves them as float Conv
between Q/DQ (the Q after each conv feeds TanhExp's three uses of x, so it is not converted to
uint8 and the conv's input and output types differ). Same accuracy either way."""
from __future__ import annotations

import collections
import json
import platform

import numpy as np
import pytest

import onnx
import onnxruntime as ort

from export.api import export
from export.config import ExportConfig
from export.errors import BadInput
from tests.export.conftest import CALIB, run_cli


def _optimized_ops(path, tmp_path) -> collections.Counter:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.optimized_model_filepath = str(tmp_path / f"{path.parent.name}-{path.stem}-opt.onnx")
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return collections.Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node)


def _activation_types(path) -> set[str]:
    m = onnx.load(str(path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}
    return {inits[n.input[2]].dtype.name for n in m.graph.node
            if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[0] not in inits}


def test_uint8_activations_let_the_convolutions_fuse(tanhexp_run, tmp_path):
    outs = {}
    for act in ("uint8", "int8"):
        out = tmp_path / act
        export(ExportConfig(format="onnx", quant=["int8"], run=str(tanhexp_run), out=str(out), calib_size=CALIB,
                            parity_batch=32, onnx_activations=act))
        outs[act] = out
    art = {a: json.loads((o / "manifest.json").read_text())["artifacts"][0] for a, o in outs.items()}
    for act, a in art.items():
        assert a["quantization_scheme"]["activations"] == act
        assert _activation_types(outs[act] / "int8.onnx") == {act}
    fused = _optimized_ops(outs["uint8"] / "int8.onnx", tmp_path)
    assert fused["QLinearConv"] == 2 and fused["Conv"] == 0, fused
    if platform.machine().lower() in ("x86_64", "amd64"):  # the S8->U8 rewrite is x86's
        assert _optimized_ops(outs["int8"] / "int8.onnx", tmp_path)["Conv"] == 2
    # the same grid shifted by 128: the same predictions, to a rounding tie
    p = {a: art[a]["parity"] for a in art}
    assert abs(p["uint8"]["agreement"] - p["int8"]["agreement"]) <= 2 / p["int8"]["count"]
    assert np.isclose(p["uint8"]["test_accuracy"], p["int8"]["test_accuracy"], atol=2 / p["int8"]["count"])


def test_unknown_activation_type_is_refused(tmp_path):
    with pytest.raises(BadInput, match="onnx_activations must be one of uint8, int8"):
        ExportConfig(format="onnx", onnx_activations="int4", out=str(tmp_path / "x")).validate()
    assert not (tmp_path / "x").exists()


def test_the_cli_has_no_activation_type_option(tanhexp_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        run_cli("--format", "onnx", "--run", tanhexp_run, "--onnx-activations", "int8")
    assert e.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


def test_default_export_runs_integer_convolutions(bundle, manifest, tmp_path):
    (a,) = [a for a in manifest["artifacts"] if a["file"] == "int8.onnx"]
    assert a["quantization_scheme"]["activations"] == "uint8"
    assert _optimized_ops(bundle / "int8.onnx", tmp_path)["QLinearConv"] == 2


def test_float_island_names_only_tanhexps_nodes():
    """Exp, Tanh and the Mul fed by a Tanh: not a Mul of anything else, not other ops."""
    from onnx import TensorProto, helper

    from export.onnx_qdq import float_island
    vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Exp", ["r"], ["e"], name="exp"),
             helper.make_node("Tanh", ["e"], ["t"], name="tanh"),
             helper.make_node("Mul", ["r", "t"], ["y"], name="gate"),
             helper.make_node("Mul", ["y", "y"], ["z"], name="square")]  # a Mul TanhExp does not own
    g = helper.make_graph(nodes, "g", [vi("x")], [vi("z")])
    assert float_island(helper.make_model(g)) == ["exp", "tanh", "gate"]
