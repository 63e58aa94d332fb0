"""kill -9 at any point: the on-disk checks catch what they claim to, the
leftovers of a killed run never block or litter its rerun, and seeded kill points of the data
cache (default suite) and of training and export (-m slow) lose nothing and rerun equal.

The full matrix is `python -m tools.faults.kill --json docs/results/kill-x86.json`
(docs/faults-kill.md)."""
from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest

from tools.faults import kill_checks as chk
from tools.faults.kill import KillConfig, failed, run_kills
from runtime.fileio import sha256_file, write_json

HAS_STRACE = shutil.which("strace") is not None


# --- the checks catch what they claim to (negative controls) ----------------------------

def _cache(path, n=4):
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        np.savez(f, x_train=rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8), y_train=np.arange(n),
                 x_test=rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8), y_test=np.arange(n))
    return path


def test_cache_check_flags_a_truncated_final_file_but_not_a_temp_one(tmp_path):
    good = _cache(tmp_path / "cifar10-imagefolder-v1-aaaa.npz")
    assert chk.check_cache(tmp_path)[0] == []
    data = good.read_bytes()
    (tmp_path / ".cifar10-imagefolder-v1-bbbb.npz.x1.tmp").write_bytes(data[: len(data) // 2])
    problems, state = chk.check_cache(tmp_path)
    assert problems == [] and state["temp"] == [".cifar10-imagefolder-v1-bbbb.npz.x1.tmp"]
    (tmp_path / "cifar10-imagefolder-v1-bbbb.npz").write_bytes(data[: len(data) // 2])
    problems, _ = chk.check_cache(tmp_path)
    assert len(problems) == 1 and "bbbb" in problems[0]


def _bundle(out, files):
    out.mkdir()
    arts = []
    for name, data in files.items():
        (out / name).write_bytes(data)
        arts.append({"file": name, "sha256": sha256_file(out / name), "size_bytes": len(data)})
    write_json(out / "manifest.json", {"schema": "edge-bundle/1", "artifacts": arts})
    return out


def test_bundle_check_flags_listed_files_that_differ_and_partial_models(tmp_path):
    import onnx
    from onnx import TensorProto, helper
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    good = model.SerializeToString()
    out = _bundle(tmp_path / "b", {"float32.onnx": good})
    assert chk.check_bundle(out)[0] == []
    (out / "float32.onnx").write_bytes(good[:-7])  # listed, then truncated
    problems = chk.check_bundle(out)[0]
    assert any("float32.onnx" in p and "differs" in p for p in problems)
    assert any("float32.onnx" in p and "runtime rejects" in p for p in problems)
    (out / "int8.onnx").write_bytes(good[:10])  # unlisted final name, partial
    assert any(p.startswith("int8.onnx") for p in chk.check_bundle(out)[0])
    (out / "manifest.json").write_text('{"schema": "edge-bu')
    assert any("manifest.json" in p for p in chk.check_bundle(out)[0])


def test_run_check_flags_gaps_in_history_and_a_checkpoint_record_without_its_files(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,loss,seconds\n1,0.5,1.0\n3,0.4,1.0\n")
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "checkpoint").write_text('model_checkpoint_path: "ckpt-2"\n')
    problems, state = chk.check_run(tmp_path)
    assert any("not 1..2" in p for p in problems)
    assert any("names ckpt-2" in p for p in problems)
    assert state["ckpt_epoch"] is None


def test_temp_names_are_told_from_final_names(tmp_path):
    for name in (".history.csv.ab12.tmp", ".model.77.partial.keras", "ckpt/ckpt-3_temp/part.tempstate9",
                 "history.csv", "notes.tmp", "ckpt/ckpt-3.index"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert chk.temp_files(tmp_path) == [".history.csv.ab12.tmp", ".model.77.partial.keras", "ckpt/ckpt-3_temp"]


# --- a killed run's leftovers neither block nor litter its rerun --------------------------

def test_a_run_killed_while_writing_its_first_config_resumes(tmp_path):
    from train.config import TrainConfig
    from train.loop import _prepare_run_dir
    run = tmp_path / "r"
    run.mkdir()
    (run / ".config.json.k3j2.tmp").write_text('{"act": "tanh')  # what the kill left
    cfg = TrainConfig(out=str(run), epochs=1)
    assert _prepare_run_dir(cfg, run) is None  # before the fix: RunExists "not empty"
    assert list(run.iterdir()) == []  # and the rerun does not keep it forever
    (run / ".config.json.k3j2.tmp").write_text('{"act": "tanh')
    (run / "notes.txt").write_text("someone else's")
    from train.config import RunExists
    with pytest.raises(RunExists):
        _prepare_run_dir(cfg, run)


def test_a_resumed_run_removes_what_its_killed_self_left(tmp_path):
    from train.config import TrainConfig
    from train.loop import _prepare_run_dir
    run = tmp_path / "r"
    cfg = TrainConfig(out=str(run), epochs=2)
    (run / "ckpt" / "ckpt-2_temp").mkdir(parents=True)
    (run / "ckpt" / "ckpt-2_temp" / "part.tempstate1").write_text("x")
    write_json(run / "config.json", cfg.to_dict())
    for name in (".history.csv.a1.tmp", ".model.123.partial.keras", "keep.tmp", ".notes.txt.b2.tmp"):
        (run / name).write_text("x")
    assert _prepare_run_dir(cfg, run) is None
    assert sorted(p.name for p in run.iterdir()) == [".notes.txt.b2.tmp", "ckpt", "config.json", "keep.tmp"]
    assert list((run / "ckpt").iterdir()) == []


def test_export_removes_only_its_own_killed_temporaries(tmp_path):
    from export.api import remove_killed_leftovers
    names = (".int8.tflite.q1.tmp", ".manifest.json.z9.tmp", ".test.npz.w.tmp", ".notes.txt.a.tmp", "x.tmp",
             "int8.tflite")
    for n in names:
        (tmp_path / n).write_text("x")
    remove_killed_leftovers(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.txt.a.tmp", "int8.tflite", "x.tmp"]


def test_cache_write_removes_a_killed_writers_temporary(tmp_path):
    from train.data import cache
    arrays = tuple(np.load(_cache(tmp_path / "src.npz"), allow_pickle=False)[k] for k in chk.CACHE_ARRAYS)
    digest = cache.fingerprint(str(tmp_path / "src.npz"))
    final = f"cifar10-test-v{cache.VERSION}-{digest[:20]}.npz"
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / f".{final}.dead1.tmp").write_bytes(b"half")
    (tmp_path / "c" / ".other.npz.x.tmp").write_bytes(b"not ours")
    got, meta = cache.cached("test", str(tmp_path / "src.npz"),
                             lambda p, size: (arrays, {"classes": ["a"], "split": {}, "resized": None}), tmp_path / "c")
    assert not meta["cache_hit"] and all(np.array_equal(a, b) for a, b in zip(got, arrays))
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [".other.npz.x.tmp", final]
    with zipfile.ZipFile(tmp_path / "c" / final) as z:
        assert z.testzip() is None


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, and no `except Exception` catches it."""


def test_re_export_never_lists_bytes_it_did_not_measure(tmp_path, monkeypatch):
    # Re-exporting int8 with another calibration replaces int8.tflite by different bytes. Kill
    # right after the rename: the manifest must not still list the old sha256 for the new file.
    from export import manifest as bundle
    from export.api import export
    from export.config import ExportConfig
    from tests.export.conftest import make_run, write_imagefolder
    run = make_run(tmp_path / "run", write_imagefolder(tmp_path / "data"), "tanhexp", epochs=0)
    out = tmp_path / "bundle"
    cfg = dict(format="tflite", quant=["int8"], run=str(run), out=str(out), parity_batch=40)
    export(ExportConfig(**cfg, calib_size=40), log=lambda m: None)
    old = sha256_file(out / "int8.tflite")
    real_write = bundle.write

    def write_or_die(folder, manifest):
        if sha256_file(out / "int8.tflite") != old:  # the new file is in place
            raise Killed
        real_write(folder, manifest)

    monkeypatch.setattr(bundle, "write", write_or_die)
    with pytest.raises(Killed):
        export(ExportConfig(**cfg, calib_size=7), log=lambda m: None)
    assert sha256_file(out / "int8.tflite") != old, "the test needs the two calibrations to differ"
    problems, state = chk.check_bundle(out)
    assert problems == [] and "int8.tflite" not in state["listed"]
    monkeypatch.setattr(bundle, "write", real_write)
    export(ExportConfig(**cfg, calib_size=7), log=lambda m: None)  # the rerun lists it again
    assert chk.check_bundle(out)[1]["listed"] == {"int8.tflite": sha256_file(out / "int8.tflite")}


# --- seeded kill points, end to end ------------------------------------------------------

def _assert_clean(doc, target):
    t = doc["targets"][target]
    s = t["summary"]
    assert t["reference_violations"] == []
    assert s["killed"] >= 1, "no kill point landed"
    assert s["violations_at_kill"] == 0 and s["violations_after_rerun"] == 0, json.dumps(t["points"], indent=1)
    assert s["lost"] == 0 and s["rerun_failed"] == 0 and s["rerun_equal"] == s["killed"]
    assert s["temp_left_after_rerun"] == 0
    assert not failed(doc)


def test_cache_kill_points(tmp_path):
    doc = run_kills(KillConfig(targets=["cache"], points=2, renames=1, seed=3, work=str(tmp_path)))
    _assert_clean(doc, "cache")
    pts = doc["targets"]["cache"]["points"]
    assert [p["kind"] for p in pts] == ["time", "time", "event", "event"] + (["rename"] if HAS_STRACE else [])
    if HAS_STRACE:  # killed inside the write: the temporary file was complete and not yet renamed
        assert pts[-1]["killed"] and pts[-1]["at_kill"]["temp"] and pts[-1]["at_kill"]["cache_files"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("target", ["train", "export"])
def test_train_and_export_kill_points(tmp_path, target):
    doc = run_kills(KillConfig(targets=[target], points=2, renames=4, seed=11, work=str(tmp_path)))
    _assert_clean(doc, target)
