"""Hostile model files: a seeded fuzz sample on a tiny real bundle, and the
pieces that make its zeros mean something (classifier, crash/hang attribution, mutators)."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tools.faults import worker
from tools.faults.classify import classify
from tools.faults.clicheck import judge
from tools.faults.fuzz import FuzzConfig, plan, run_fuzz, small_bundle, sources_of
from tools.faults.mutate import MUTATORS, mutate, tiny_model
from tools.faults.pool import Worker

from tests.runtime.rt_helpers import build_tiny_bundle

REPO = Path(__file__).resolve().parents[3]
CASES = 39  # 13 mutators x 3 files of the tiny bundle: every pair once


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> Path:
    return build_tiny_bundle(tmp_path_factory.mktemp("fuzz") / "export")


def test_seeded_sample_no_crash_hang_or_undetected_corruption(tiny_bundle):
    doc = run_fuzz(FuzzConfig(bundles=[str(tiny_bundle)], cases=CASES, seed=0, timeout=60, cli=2))
    assert doc["cases"] == CASES
    fails = doc["failures"]
    assert {k: doc["totals"][k] for k in ("crash", "hang", "undetected", "dirty")} == \
        {"crash": 0, "hang": 0, "undetected": 0, "dirty": 0}, fails
    assert set(doc["by_mutator"]) == set(MUTATORS)
    # every mutated file in a bundle was refused before any loader saw it
    assert doc["by_step"]["bundle"] == {"clean_error": CASES}
    assert sum(doc["by_step"]["bare"].values()) == sum(doc["by_step"]["export"].values()) == CASES
    assert sum(doc["by_step"]["cli_bundle"].values()) == sum(doc["by_step"]["cli_bare"].values()) == 2
    # some damage leaves a working model (bit flips in weights): only the hash can tell
    t = doc["totals"]
    assert t["still_loadable"] > 0 and t["still_loadable_caught_by_sha256"] == t["still_loadable"]


def test_classifier_counts_what_must_fail():
    row = {"kind": "row", "error": None, "sha256_ok": None, "load_ms": 1.5, "count": 8}
    assert classify("bundle", row)[0] == "undetected"  # benchmarked a file nobody checked
    assert classify("bare", row)[0] == "ok"  # a bare file has no hash: running is legitimate
    loaded_then_failed = {**row, "error": "model output is not finite"}
    assert classify("bundle", loaded_then_failed)[0] == "undetected"  # the loader saw it
    refused = {"kind": "row", "error": "x.tflite: sha256 does not match", "sha256_ok": False, "load_ms": None}
    assert classify("bundle", refused)[0] == "clean_error"
    assert classify("bare", {**refused, "error": "line one\nline two"})[0] == "dirty"
    assert classify("export", {"kind": "export_error", "message": "Traceback (most recent call last)"})[0] == "dirty"
    assert classify("bare", {"kind": "escaped", "type": "KeyError", "message": "x"})[0] == "dirty"
    assert classify("bare", {"kind": "crash", "detail": "killed by SIGSEGV"})[0] == "crash"
    assert classify("export", {"kind": "hang"})[0] == "hang"
    ok_doc = {"rows": [{"error": None, "load_ms": 2.0, "count": 8}]}
    assert judge("cli_bundle", 0, "", ok_doc)["outcome"] == "undetected"
    assert judge("cli_bare", 0, "", ok_doc)["outcome"] == "ok"
    assert judge("cli_bare", 1, "Traceback (most recent call last):\n  x", None)["outcome"] == "dirty"
    assert judge("cli_bare", 2, "error: a\nerror: b\n", None)["outcome"] == "dirty"
    assert judge("cli_bare", 2, "error: no such file\n", None)["outcome"] == "clean_error"
    assert judge("cli_bare", -11, "", None)["outcome"] == "crash"


def test_a_skipped_hash_check_would_be_counted(tiny_bundle, tmp_path, monkeypatch):
    """The zeros above can fail: with the sha256 check bypassed, a valid stand-in model in
    the bundle is loaded and benchmarked, and the bundle step reports it as undetected."""
    b = small_bundle(tiny_bundle, tmp_path / "b")
    (b / "float32.onnx").write_bytes(tiny_model("onnx", [1, 32, 32, 3], "float32"))
    req = {"bundle": str(b), "file": "float32.onnx", "format": "onnx", "mode": "float32"}
    assert classify("bundle", worker.step_bundle(req))[0] == "clean_error"
    monkeypatch.setattr("runtime.measure.verify", lambda art: (None, None))
    outcome, detail = classify("bundle", worker.step_bundle(req))
    assert outcome == "undetected", detail


def test_pool_charges_a_signal_death_and_a_hang_to_the_step_and_restarts(tmp_path):
    with Worker(tmp_path / "w.log") as w:
        res = w.call({"step": "selftest", "do": "signal"}, timeout=30)
        assert res["kind"] == "crash" and "SIGSEGV" in res["detail"]
        res = w.call({"step": "selftest", "do": "sleep", "seconds": 60}, timeout=1)
        assert res["kind"] == "hang"
        res = w.call({"step": "export", "path": str(tmp_path / "none.onnx"), "format": "onnx"}, timeout=60)
        assert res["kind"] == "export_error" and "\n" not in res["message"]
        assert w.starts == 3


def test_mutators_are_seeded_and_always_change_the_file(tiny_bundle, tmp_path):
    cases = plan(sources_of(str(tiny_bundle)), len(MUTATORS) * 3, seed=5)
    for c in cases:
        src = Path(c.source.bundle) / c.source.file
        a, b = tmp_path / f"a{c.index}{src.suffix}", tmp_path / f"b{c.index}{src.suffix}"
        assert mutate(c.mutator, src, a, c.seed) == mutate(c.mutator, src, b, c.seed)
        if c.mutator == "directory":
            assert a.is_dir()
        elif c.mutator == "symlink_loop":
            with pytest.raises(OSError) as e:
                a.stat()
            assert e.value.errno == errno.ELOOP
        else:
            assert a.read_bytes() == b.read_bytes() != src.read_bytes(), c


def test_cli_bad_bundle_is_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "tools.faults.fuzz", "--bundle", str(tmp_path / "nope"), "--no-progress"],
                       capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr


# --- the fixes the fuzzer led to (docs/faults-fuzz.md, "What it found") ---------------------

def test_litert_backend_refuses_a_tensor_claiming_gigabytes(tmp_path):
    from tools.faults.mutate import _pack_tflite, _schema
    from runtime.backends.litert import check_flatbuffer
    from runtime.errors import ModelError
    ok = tmp_path / "ok.tflite"
    ok.write_bytes(tiny_model("tflite", [1, 32, 32, 3], "float32"))
    check_flatbuffer(ok)
    m = _schema().ModelT.InitFromPackedBuf(ok.read_bytes(), 0)
    m.subgraphs[0].tensors[3].shape = np.asarray([1, 1 << 20, 13, 64], np.int32)  # "flat": 3.2 GiB
    big = tmp_path / "big.tflite"
    big.write_bytes(_pack_tflite(m))
    with pytest.raises(ModelError, match="GiB"):
        check_flatbuffer(big)


def test_bench_refuses_a_fixed_batch_of_a_million_images(tmp_path):
    # the bench pads every call to the model's fixed batch: 12 GiB here. In the worker (its
    # address space capped), so that a regression fails in malloc, not on the machine
    model = tmp_path / "huge_batch.onnx"
    model.write_bytes(tiny_model("onnx", [1 << 20, 32, 32, 3], "float32"))
    data = tmp_path / "x.npz"
    np.savez(data, x=np.zeros((4, 32, 32, 3), np.uint8))
    with Worker(tmp_path / "w.log") as w:
        res = w.call({"step": "bare", "path": str(model), "data": str(data)}, timeout=120)
    assert res["kind"] == "row" and "per call" in (res["error"] or ""), res
    assert res["load_ms"] is not None  # it loaded; it was refused before preparing inputs


def test_export_validate_turns_a_litert_crash_into_one_error(tmp_path, monkeypatch):
    from export import tflite
    from export.errors import ExportFailed
    f = tmp_path / "m.tflite"
    f.write_bytes(tiny_model("tflite", [1, 32, 32, 3], "float32"))
    tflite.validate(f)
    monkeypatch.setattr(tflite, "_VALIDATE", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    with pytest.raises(ExportFailed, match=r"crashed \(SIGSEGV\)"):
        tflite.validate(f)


def test_export_op_reader_names_a_non_tflite_file():
    from export.errors import ExportFailed
    from export.opcheck import tflite_ops
    good = tiny_model("tflite", [1, 32, 32, 3], "float32")
    assert tflite_ops(good) == ["CAST", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    with pytest.raises(ExportFailed, match="not a TFLite flatbuffer"):
        tflite_ops(tiny_model("onnx", [1, 32, 32, 3], "float32"))
    with pytest.raises(ExportFailed, match="not a readable TFLite flatbuffer"):
        tflite_ops(good[:4] + b"TFL3" + good[8:200])
