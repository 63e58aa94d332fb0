"""experiments.compare: paired by seed over two run families, on hand-made run folders."""
import json
import subprocess
import sys

import pytest

from experiments.compare import compare, markdown


def _run(root, name, test_acc, vals, secs=100.0):
    d = root / name
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"test_accuracy": test_acc, "wall_time_s": secs}))
    (d / "history.csv").write_text("epoch,val_accuracy\n" + "".join(f"{i + 1},{v}\n" for i, v in enumerate(vals)))


def test_paired_differences_by_seed(tmp_path):
    for s, (a, b) in enumerate([(0.66, 0.65), (0.67, 0.65), (0.68, 0.65)]):
        _run(tmp_path, f"a-relu-s{s}", a, [0.5, a], secs=50)
        _run(tmp_path, f"b-relu-s{s}", b, [0.5, b], secs=100)
    _run(tmp_path, "a-relu-s3", 0.9, [0.9])  # no partner on the B side: dropped
    rows = compare(str(tmp_path / "a-{act}-s{seed}"), str(tmp_path / "b-{act}-s{seed}"), ["relu"], [0, 1, 2, 3])
    test = next(r for r in rows if r["metric"] == "test_accuracy")
    assert test["n"] == 3 and test["mean_diff"] == pytest.approx(0.02)  # diffs .01 .02 .03
    # std of the diffs 0.01, t(0.975, 2) = 4.303 -> half-width 4.303 * 0.01 / sqrt(3) = 0.02484
    assert test["ci_low"] == pytest.approx(0.02 - 0.02484, abs=1e-4) and test["verdict"] == "not significant"
    val = next(r for r in rows if r["metric"] == "best_val_accuracy")
    assert val["mean_diff"] == pytest.approx(0.02) and not [r for r in rows if r["metric"] == "wall_time_s"]
    assert "| relu | test_accuracy | 3 | 66.00, 67.00, 68.00 |" in markdown(rows, "a", "b")


def test_cli_says_when_nothing_pairs(tmp_path):
    _run(tmp_path, "a-relu-s0", 0.6, [0.6])
    r = subprocess.run([sys.executable, "-m", "experiments.compare", "--a", str(tmp_path / "a-{act}-s{seed}"),
                        "--b", str(tmp_path / "none-{act}-s{seed}"), "--acts", "relu", "--seeds", "0"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no seed has a finished run" in r.stderr
    r = subprocess.run([sys.executable, "-m", "experiments.compare", "--a", "x{bad}", "--b", "y"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error:") and r.stderr.count("\n") == 1
