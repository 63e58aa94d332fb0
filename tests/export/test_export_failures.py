"""A failing export leaves the bundle exactly as it was: no new or half-written file, the
manifest unchanged, and a fresh output folder removed again."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from export.api import export
from export.config import ExportConfig
from export.errors import ExportFailed, OpNotAllowed
from export.formats import FORMATS


def snapshot(d: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def quiet(m):
    pass


@pytest.fixture
def copy(bundle, tmp_path) -> Path:
    return shutil.copytree(bundle, tmp_path / "b")


def half_then_raise(job, out):
    Path(out).write_bytes(b"TFL3 half a model")
    raise RuntimeError("converter crashed mid-way")


def test_converter_crash_leaves_nothing(copy, tanhexp_run, monkeypatch):
    monkeypatch.setitem(FORMATS["tflite"], "int8", half_then_raise)
    before = snapshot(copy)
    with pytest.raises(ExportFailed, match="tflite/int8: RuntimeError: converter crashed mid-way"):
        export(ExportConfig(format="tflite", quant=["int8"], run=str(tanhexp_run), out=str(copy)), log=quiet)
    assert snapshot(copy) == before


def test_disallowed_op_fails_the_export_naming_the_op(copy, tanhexp_run, monkeypatch):
    from tests.export.test_export_opcheck import flex_tflite
    flex = flex_tflite()
    monkeypatch.setitem(FORMATS["tflite"], "float16", lambda job, out: Path(out).write_bytes(flex) and {})
    before = snapshot(copy)
    with pytest.raises(OpNotAllowed, match="FlexMatrixDeterminant"):
        export(ExportConfig(format="tflite", quant=["float16"], run=str(tanhexp_run), out=str(copy)), log=quiet)
    assert snapshot(copy) == before


def test_failure_after_conversion_leaves_nothing(copy, tanhexp_run, monkeypatch):
    from export import onnx as onnx_mod

    def broken(*a, **k):
        raise ValueError("parity runner broke")
    monkeypatch.setattr(onnx_mod, "predict", broken)
    before = snapshot(copy)
    with pytest.raises(ExportFailed, match="onnx/float32"):
        export(ExportConfig(format="onnx", quant=["float32"], run=str(tanhexp_run), out=str(copy)), log=quiet)
    assert snapshot(copy) == before


def test_failed_first_export_removes_the_new_folder(tanhexp_run, tmp_path, monkeypatch):
    monkeypatch.setitem(FORMATS["tflite"], "float32", half_then_raise)
    out = tmp_path / "new" / "export"
    with pytest.raises(ExportFailed):
        export(ExportConfig(format="tflite", quant=["float32"], run=str(tanhexp_run), out=str(out)), log=quiet)
    assert not out.exists()


def test_later_failure_keeps_earlier_complete_artifacts(tanhexp_run, tmp_path, monkeypatch):
    """Each artifact is indexed once verified; a later mode's failure does not undo it."""
    import json
    monkeypatch.setitem(FORMATS["tflite"], "dynamic", half_then_raise)
    out = tmp_path / "export"
    with pytest.raises(ExportFailed, match="tflite/dynamic"):
        export(ExportConfig(format="tflite", quant=["float32", "dynamic"], run=str(tanhexp_run), out=str(out)),
               log=quiet)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "float32.tflite", "manifest.json",
                                                     "reference.npz", "test.npz"]
    m = json.loads((out / "manifest.json").read_text())
    assert [a["file"] for a in m["artifacts"]] == ["float32.tflite"]
