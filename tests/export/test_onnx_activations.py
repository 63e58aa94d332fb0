"""ONNX int8 activation type (--onnx-activations): with uint8 (the default) ONNX Runtime fuses
TanhExp's convolutions into QLinearConv; with int8 its x86 optimizer leaves them as float Conv
between Q/DQ (the Q after each conv feeds TanhExp's three uses of x, so it is not converted to
uint8 and the conv's input and output types differ). Same accuracy either way."""
from __future__ import annotations

import collections
import json
import platform

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from tests.export.conftest import CALIB, run_cli  # noqa: E402


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
        assert run_cli("--format", "onnx", "--quant", "int8", "--run", tanhexp_run, "--out", out,
                       "--calib-size", CALIB, "--parity-batch", 32, "--onnx-activations", act) == 0
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


def test_unknown_activation_type_is_one_line(tanhexp_run, tmp_path, capsys):
    assert run_cli("--format", "onnx", "--quant", "int8", "--run", tanhexp_run, "--out", tmp_path / "x",
                   "--onnx-activations", "int4") == 2
    err = capsys.readouterr().err
    assert "--onnx-activations must be one of uint8, int8" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_default_export_runs_integer_convolutions(bundle, manifest, tmp_path):
    (a,) = [a for a in manifest["artifacts"] if a["file"] == "int8.onnx"]
    assert a["quantization_scheme"]["activations"] == "uint8"
    assert _optimized_ops(bundle / "int8.onnx", tmp_path)["QLinearConv"] == 2
