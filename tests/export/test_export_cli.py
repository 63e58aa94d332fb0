"""Bad input through the real command line: exit code 2, exactly one `error:` line on stderr,
nothing written. All of these are caught before TensorFlow is imported, so they are fast."""
from __future__ import annotations

import shutil
import subprocess
import zipfile

import pytest

from tests.export.conftest import PY, REPO, subprocess_env


def cli(*args, cwd=REPO):
    return subprocess.run([PY, "-m", "export", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=subprocess_env(), timeout=120)


def assert_bad(r, match: str):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], r.stderr
    assert r.stdout == ""


@pytest.fixture
def run_copy(tanhexp_run, tmp_path):
    return shutil.copytree(tanhexp_run, tmp_path / "run")


def test_help():
    r = cli("--help")
    assert r.returncode == 0 and "--format" in r.stdout and "--calib-size" in r.stdout


def test_missing_run(tmp_path):
    assert_bad(cli("--format", "tflite", "--run", tmp_path / "nope", "--out", tmp_path / "o"), "run folder not found")
    assert not (tmp_path / "o").exists()


def test_no_runs_to_default_to(tmp_path):
    assert_bad(cli("--format", "tflite", cwd=tmp_path), "no finished run under runs/")


def test_missing_model(run_copy, tmp_path):
    (run_copy / "model.keras").unlink()
    assert_bad(cli("--format", "tflite", "--run", run_copy, "--out", tmp_path / "o"), "model not found")


def test_missing_config(run_copy, tmp_path):
    (run_copy / "config.json").unlink()
    assert_bad(cli("--format", "tflite", "--run", run_copy, "--out", tmp_path / "o"), "no config.json")


def test_corrupt_model_bytes(run_copy, tmp_path):
    (run_copy / "model.keras").write_bytes(b"\x00garbage, not a zip")
    assert_bad(cli("--format", "tflite", "--run", run_copy, "--out", tmp_path / "o"), "model.keras: corrupt")
    assert not (tmp_path / "o").exists()


def test_truncated_model(run_copy, tmp_path):
    p = run_copy / "model.keras"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    assert_bad(cli("--format", "onnx", "--run", run_copy, "--out", tmp_path / "o"), "model.keras")


def test_damaged_member(run_copy, tmp_path):
    p = run_copy / "model.keras"
    with zipfile.ZipFile(p) as z:
        names = z.namelist()
    data = bytearray(p.read_bytes())
    data[len(data) // 3] ^= 0xFF  # flip bits inside the stored weights
    p.write_bytes(bytes(data))
    assert names and "model.weights.h5" in names
    assert_bad(cli("--format", "tflite", "--run", run_copy, "--out", tmp_path / "o"), "model.keras")


@pytest.mark.parametrize("args,match", [
    (["--format", "coreml"], "unknown format 'coreml'"),
    (["--format", "tflite", "--quant", "int4"], "unknown mode 'int4'"),
    (["--format", "onnx", "--quant", "float16"], "onnx has no mode 'float16'"),
    (["--format", "onnx", "--quant", "int8,qat"], "onnx has no mode 'qat'"),
    (["--format", "tflite", "--calib-size", "0"], "--calib-size must be > 0"),
    (["--format", "onnx", "--opset", "9"], "--opset must be in 13..18"),
    (["--format", "onnx", "--onnx-calib-percentile", "40"], "--onnx-calib-percentile must be in (50, 100]"),
    (["--format", "tflite", "--tflite-calib-percentile", "40"], "--tflite-calib-percentile must be in (50, 100]"),
    (["--quant", "int8"], "--format"),
    (["--format", "tflite", "--calib-size", "many"], "invalid int value"),
])
def test_bad_arguments(tanhexp_run, tmp_path, args, match):
    assert_bad(cli(*args, "--run", tanhexp_run, "--out", tmp_path / "o"), match)
    assert not (tmp_path / "o").exists()


def test_unwritable_out_under_a_regular_file(tanhexp_run, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("i am a file")
    assert_bad(cli("--format", "tflite", "--run", tanhexp_run, "--out", blocker / "export"), "cannot write")
    assert blocker.read_text() == "i am a file"


def test_corrupt_existing_manifest(tanhexp_run, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "manifest.json").write_text("{not json")
    assert_bad(cli("--format", "tflite", "--run", tanhexp_run, "--out", out), "manifest.json: unreadable")


def test_importing_export_has_no_side_effects():
    code = ("import sys, export, export.api, export.formats, export.config, export.manifest, export.opcheck, "
            "export.parity, export.run, export.tflite, export.onnx, export.qat, export.__main__; "
            "heavy = [m for m in ('tensorflow', 'tf_keras', 'onnx', 'onnxruntime', 'tf2onnx') if m in sys.modules]; "
            "print(heavy)")
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=REPO, env=subprocess_env(), timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr


def test_newest_run_by_metrics_time(tmp_path):
    import os

    from export.run import newest_run
    for i, name in enumerate(["a", "b", "c"]):
        d = tmp_path / name
        d.mkdir()
        (d / "model.keras").write_bytes(b"x")
        (d / "metrics.json").write_text("{}")
        os.utime(d / "metrics.json", (1000 + i * (1 if name != "b" else 10), 1000 + i * (1 if name != "b" else 10)))
    (tmp_path / "d").mkdir()  # unfinished: no metrics.json
    assert newest_run(tmp_path).name == "b"
