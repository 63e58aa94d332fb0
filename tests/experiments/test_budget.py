"""experiments.budget: rows from hand-made run folders (metrics.json, config.json, export manifest)."""
import json
import subprocess
import sys

import pytest

from experiments.budget import main, row


def _run(tmp_path, name, act, minutes, float_acc, int8_acc=None, val_size=5000):
    run = tmp_path / name
    (run / "export").mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({
        "act": act, "arch": "resnet8", "seed": 0, "epochs": 140, "wall_time_s": 60 * minutes,
        "test_accuracy": float_acc, "trained_on": "cpu", "git_commit": "abc", "versions": {}}))
    (run / "config.json").write_text(json.dumps({"recipe": "strong-sgd", "val_size": val_size}))
    if int8_acc is not None:
        arts = [{"format": "onnx", "mode": "int8", "parity": {"test_accuracy": 0.99}},  # not the TFLite one
                {"format": "tflite", "mode": "float32", "parity": {"test_accuracy": 0.98}},
                {"format": "tflite", "mode": "int8", "parity": {"test_accuracy": int8_acc}}]
        (run / "export" / "manifest.json").write_text(json.dumps({"artifacts": arts}))
    return run


def test_row_takes_the_tflite_int8_model_and_checks_both_limits(tmp_path):
    ok = row(_run(tmp_path, "a", "relu", 59.9, 0.86, 0.851), 0.85, 60)
    assert ok["int8_test"] == 0.851 and ok["meets"] and ok["minutes"] == 59.9
    assert not row(_run(tmp_path, "b", "relu", 60.5, 0.86, 0.851), 0.85, 60)["meets"]  # too slow
    assert not row(_run(tmp_path, "c", "relu", 40, 0.86, 0.849), 0.85, 60)["meets"]    # not accurate enough
    missing = row(_run(tmp_path, "d", "relu", 40, 0.90), 0.85, 60)                    # not exported
    assert missing["int8_test"] is None and not missing["meets"]


def test_cli_table_json_and_plot(tmp_path, capsys):
    runs = [_run(tmp_path, "slow", "tanhexp", 73, 0.847, 0.842), _run(tmp_path, "all", "relu", 55, 0.85, 0.851, val_size=0)]
    out_json, out_png = tmp_path / "b.json", tmp_path / "b.png"
    assert main([str(r) for r in runs] + ["--json", str(out_json), "--plot", str(out_png)]) == 0
    table = capsys.readouterr().out
    lines = [ln for ln in table.splitlines() if ln.startswith("| all") or ln.startswith("| slow")]
    assert lines[0].startswith("| all") and "train + val" in lines[0] and lines[0].endswith("| yes |")  # sorted by time
    assert "85.10 %" in lines[0] and lines[1].endswith("| no |")
    rows = json.loads(out_json.read_text())["rows"]
    assert [r["run"] for r in rows] == ["all", "slow"] and rows[1]["int8_test"] == 0.842
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args", [["NOPE"], ["RUN", "--target", "85"], ["RUN", "--minutes", "0"]])
def test_bad_input_is_one_line(tmp_path, args):
    good = _run(tmp_path, "r", "relu", 50, 0.8, 0.79)
    args = [str(tmp_path / "missing") if a == "NOPE" else str(good) if a == "RUN" else a for a in args]
    p = subprocess.run([sys.executable, "-m", "experiments.budget", *args], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith("error:") and len(p.stderr.strip().splitlines()) == 1
    assert p.stdout == ""
