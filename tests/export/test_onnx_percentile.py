"""ONNX int8 with --onnx-calib-percentile: activation ranges no wider than min/max (read back from
the QuantizeLinear scales in the file), recorded in the manifest."""
from __future__ import annotations

import json

import pytest

import onnx

from tests.export.conftest import CALIB, run_cli  # noqa: E402


def _activation_scales(path) -> dict:
    m = onnx.load(str(path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}
    return {n.input[0]: float(inits[n.input[1]]) for n in m.graph.node
            if n.op_type == "QuantizeLinear" and n.input[1] in inits and inits[n.input[1]].size == 1
            and n.input[0] not in inits}


def test_percentile_ranges_are_narrower_and_recorded(relu_run, tmp_path):
    outs = {}
    for name, extra in (("minmax", []), ("pct", ["--onnx-calib-percentile", "99"])):
        out = tmp_path / name
        assert run_cli("--format", "onnx", "--quant", "int8", "--run", relu_run, "--out", out,
                       "--calib-size", CALIB, "--parity-batch", 32, *extra) == 0
        outs[name] = out
    a, b = _activation_scales(outs["minmax"] / "int8.onnx"), _activation_scales(outs["pct"] / "int8.onnx")
    assert a and a.keys() == b.keys()
    assert all(b[k] <= a[k] * (1 + 1e-6) for k in a)   # never wider
    assert any(b[k] < a[k] * 0.999 for k in a)          # and really narrower somewhere
    ranges = {n: json.loads((o / "manifest.json").read_text())["artifacts"][0]["calibration"]["ranges"]
              for n, o in outs.items()}
    assert ranges == {"minmax": "min/max", "pct": "percentile 99"}
