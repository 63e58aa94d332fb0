"""python -m study.sweep on hand-made run folders: the figures against hand-computed values, the
diff of configs, and its refusals (no validation split, another validation split, not a run)."""
import csv
import json

import pytest

from study.sweep import main, markdown, sweep


def _run(root, name, val, seconds, train=None, **cfg):
    run = root / name
    run.mkdir()
    config = {"act": "relu", "arch": "resnet8", "recipe": "strong-sgd", "epochs": len(val), "batch_size": 100,
              "lr": None, "seed": 0, "val_size": 5000, "verbose": 2, "out": str(run), **cfg}
    (run / "config.json").write_text(json.dumps(config))
    with open(run / "history.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"])
        for i, (v, s) in enumerate(zip(val, seconds), 1):
            w.writerow([i, 1.0, (train or val)[i - 1], 1.0, v, s])
    # a test accuracy the sweep must never read
    (run / "metrics.json").write_text(json.dumps({"test_accuracy": 0.99}))
    return run


def test_rows_against_hand_computed_values(tmp_path):
    base = _run(tmp_path, "base", [0.5, 0.6, 0.7, 0.8, 0.8, 0.9], [10, 12, 11, 10, 10, 10],
                train=[0.6] * 6, lr=0.1)  # 0.1 is strong-sgd's own lr: not a change
    var = _run(tmp_path, "var", [0.6, 0.7, 0.9, 0.7], [8, 8, 9, 8], epochs=8, batch_size=250, lr=0.25,
               label_smoothing=0.1)
    rows = sweep([var, base], base)
    assert [r["run"] for r in rows] == ["base", "var"]  # the baseline first, once
    b, v = rows
    assert b["changes"] == {} and b["delta_pt"] == 0
    assert b["val_last5"] == pytest.approx((0.6 + 0.7 + 0.8 + 0.8 + 0.9) / 5)
    assert (b["val_best"], b["val_best_epoch"]) == (0.9, 6)
    assert b["train_last5"] == pytest.approx(0.6)
    assert b["median_epoch_s"] == 10 and b["minutes"] == pytest.approx(63 / 60)
    assert v["changes"] == {"epochs": 8, "batch_size": 250, "lr": 0.25, "label_smoothing": 0.1}
    assert v["val_last5"] == pytest.approx(0.725) and v["val_best_epoch"] == 3
    assert v["delta_pt"] == pytest.approx(100 * (0.725 - 0.76), abs=0.01)
    # median 8 s x 8 planned epochs against 10 s x 6
    assert v["epoch_time_ratio"] == pytest.approx(0.8)
    assert v["planned_minutes"] == pytest.approx(64 / 60) and v["time_ratio"] == pytest.approx(64 / 60)
    assert v["curve"][:2] == [[pytest.approx(8 / 60, abs=1e-3), 0.6], [pytest.approx(16 / 60, abs=1e-3), 0.7]]
    table = markdown(rows)
    assert "| var | epochs 8, batch-size 250, lr 0.25, label-smoothing 0.1 | 4 of 8 | 72.50 % | -3.50 pt |" in table
    assert "99" not in table  # the test accuracy is never read


def test_cli_writes_json_and_plot(tmp_path, capsys):
    base = _run(tmp_path, "base", [0.5, 0.6], [10, 10])
    var = _run(tmp_path, "var", [0.55, 0.65], [9, 9], lr=0.05)
    out = tmp_path / "out"
    assert main([str(var), "--baseline", str(base), "--json", str(out / "s.json"), "--plot", str(out / "s.png")]) == 0
    assert "| var | lr 0.05 |" in capsys.readouterr().out
    d = json.loads((out / "s.json").read_text())
    assert [r["run"] for r in d["rows"]] == ["base", "var"] and "git_commit" in d["provenance"]
    assert (out / "s.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in out.iterdir()) == ["s.json", "s.png"]  # no temporary files left


@pytest.mark.parametrize("case", ["no-val", "other-split", "not-a-run", "bad-json"])
def test_refusals_are_one_line(tmp_path, capsys, case):
    base = _run(tmp_path, "base", [0.5, 0.6], [10, 10])
    if case == "no-val":
        bad = tmp_path / "bad"
        bad.mkdir()
        (bad / "config.json").write_text(json.dumps({"val_size": 0, "seed": 0}))
        (bad / "history.csv").write_text("epoch,loss,accuracy,seconds\n1,1.0,0.5,10\n")
    elif case == "other-split":
        bad = _run(tmp_path, "bad", [0.5, 0.6], [10, 10], seed=1)
    elif case == "not-a-run":
        bad = tmp_path / "nothing"
    else:
        bad = _run(tmp_path, "bad", [0.5, 0.6], [10, 10])
        (bad / "config.json").write_text("{not json")
    assert main([str(bad), "--baseline", str(base), "--json", str(tmp_path / "s.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "s.json").exists()
