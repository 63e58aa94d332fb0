"""python -m experiments.sweep on hand-made run folders: the figures against hand-computed values, the
diff of what was trained, and its refusals (no validation split, another split, not a run)."""
import csv
import json
from pathlib import Path

import pytest

from experiments.sweep import main, markdown, sweep

SHA = "ab" * 32


def _run(root, name, val, seconds, train=None, sha=SHA, **cfg):
    run = root / name
    run.mkdir()
    config = {"act": "relu", "arch": "resnet8", "recipe": "strong-sgd", "epochs": len(val), "batch_size": 100,
              "lr": None, "seed": 0, "val_size": 5000, "verbose": 2, "out": str(run),
              "data_source": {"kind": "imagefolder", "sha256": sha},
              "device": {"cpu": "Test CPU", "arch": "x86_64", "cores": 2}, **cfg}
    (run / "config.json").write_text(json.dumps(config))
    with open(run / "history.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "loss", "accuracy", "val_loss", "val_accuracy"] + (["seconds"] if seconds else []))
        for i, v in enumerate(val):
            w.writerow([i + 1, 1.0, (train or val)[i], 1.0, v] + ([seconds[i]] if seconds else []))
    # a test accuracy the sweep must never read (the test below makes reading it fail)
    (run / "metrics.json").write_text(json.dumps({"test_accuracy": 0.99}))
    return run


@pytest.fixture(autouse=True)
def _metrics_unreadable(monkeypatch):
    """Opening any metrics.json (the test accuracy) fails the test."""
    import builtins

    real_open, real_read = builtins.open, Path.read_text

    def guard(path):
        assert Path(path).name != "metrics.json", "experiments.sweep read the test accuracy"

    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: (guard(f), real_open(f, *a, **k))[1])
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: (guard(self), real_read(self, *a, **k))[1])


def test_rows_against_hand_computed_values(tmp_path):
    base = _run(tmp_path, "base", [0.5, 0.6, 0.7, 0.8, 0.8, 0.9], [12, 14, 13, 12, 12, 12],
                train=[0.6] * 6, lr=0.1)  # 0.1 is strong-sgd's own lr: not a change
    var = _run(tmp_path, "var", [0.6, 0.7, 0.9, 0.7, 0.8, 0.9, 0.85, 0.8], [8, 8, 9, 8, 8, 8, 8, 8],
               batch_size=250, lr=0.25, label_smoothing=0.1)
    rows = sweep([var, base, var], base)
    assert [r["run"] for r in rows] == ["base", "var"]  # the baseline first; each run once
    b, v = rows
    assert b["changes"] == {} and b["delta_pt"] == 0
    assert b["val_last5_mean"] == pytest.approx((0.6 + 0.7 + 0.8 + 0.8 + 0.9) / 5)
    assert (b["val_best"], b["val_best_epoch"]) == (0.9, 6)
    assert b["train_last5"] == pytest.approx(0.6)
    assert b["median_epoch_s"] == 12 and b["minutes"] == pytest.approx(75 / 60)
    assert v["changes"] == {"epochs": 8, "batch_size": 250, "lr": 0.25, "label_smoothing": 0.1}
    assert v["val_last5_mean"] == pytest.approx(0.81) and v["val_best_epoch"] == 3
    assert v["delta_pt"] == pytest.approx(100 * (0.81 - 0.76), abs=0.01)
    # median 8 s x 8 epochs against 12 s x 6
    assert v["epoch_time_ratio"] == pytest.approx(8 / 12)
    assert v["planned_minutes"] == pytest.approx(64 / 60) and v["time_ratio"] == pytest.approx(64 / 72)
    assert v["curve"][:2] == [[pytest.approx(8 / 60, abs=1e-3), 0.6], [pytest.approx(16 / 60, abs=1e-3), 0.7]]
    assert ("| var | epochs 8, batch-size 250, lr 0.25, label-smoothing 0.1 | 8 | 81.00 % | +5.00 pt | "
            "90.00 % (3) | 81.00 % | 8.0 s (0.67x) | 1.1 min (0.89x) |") in markdown(rows)


def test_what_differs_is_what_was_trained(tmp_path):
    base = _run(tmp_path, "base", [0.5, 0.6], [10, 10])
    # another recipe shows with the settings it changes (strong-sgd-reg: label smoothing and weight decay)
    reg = _run(tmp_path, "reg", [0.5, 0.6], [10, 10], recipe="strong-sgd-reg")
    # --weight-decay 0 on strong-sgd (whose decay is 0) and a different verbosity/out change nothing
    same = _run(tmp_path, "same", [0.5, 0.6], [10, 10], weight_decay=0.0, verbose=0)
    running = _run(tmp_path, "running", [0.4, 0.5], [10, 10], epochs=140)
    rows = {r["run"]: r for r in sweep([reg, same, running], base)}
    assert rows["reg"]["changes"] == {"recipe": "strong-sgd-reg", "weight_decay": 3e-3, "label_smoothing": 0.1}
    assert rows["same"]["changes"] == {}
    # a run still going is not compared yet, and its time is projected to its planned epochs
    assert rows["running"]["delta_pt"] is None and rows["running"]["planned_minutes"] == pytest.approx(1400 / 60)
    assert "| running | epochs 140 | 2 of 140 (running) | 45.00 % | – (running) |" in markdown(list(rows.values()))


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


@pytest.mark.parametrize("case", ["no-val", "other-split", "other-data", "not-a-run", "bad-json", "short-row",
                                  "no-seconds-plot", "plot-is-a-folder"])
def test_refusals_are_one_line_and_write_nothing(tmp_path, capsys, case):
    base = _run(tmp_path, "base", [0.5, 0.6], [10, 10])
    args = ["--json", str(tmp_path / "out" / "s.json"), "--plot", str(tmp_path / "out" / "s.png")]
    if case == "no-val":
        bad = tmp_path / "bad"
        bad.mkdir()
        (bad / "config.json").write_text(json.dumps({"val_size": 0, "seed": 0}))
        (bad / "history.csv").write_text("epoch,loss,accuracy,seconds\n1,1.0,0.5,10\n")
    elif case == "other-split":
        bad = _run(tmp_path, "bad", [0.5, 0.6], [10, 10], seed=1)
    elif case == "other-data":
        bad = _run(tmp_path, "bad", [0.5, 0.6], [10, 10], sha="cd" * 32)
    elif case == "not-a-run":
        bad = tmp_path / "nothing"
    elif case == "bad-json":
        bad = _run(tmp_path, "bad", [0.5, 0.6], [10, 10])
        (bad / "config.json").write_text("{not json")
    elif case == "short-row":
        bad = _run(tmp_path, "bad", [0.5, 0.6], [10, 10])
        with open(bad / "history.csv", "a") as f:
            f.write("3,1.0\n")
    elif case == "no-seconds-plot":
        bad = _run(tmp_path, "bad", [0.5, 0.6], None)
    else:
        bad = _run(tmp_path, "bad", [0.5, 0.6], [10, 10])
        (tmp_path / "out" / "s.png").mkdir(parents=True)
    assert main([str(bad), "--baseline", str(base)] + args) == 2
    cap = capsys.readouterr()
    assert cap.err.startswith("error: ") and cap.err.count("\n") == 1
    assert cap.out == ""  # no table either: all outputs or none
    assert not (tmp_path / "out" / "s.json").exists()
    assert not (tmp_path / "out").exists() or [p.name for p in (tmp_path / "out").iterdir()] in ([], ["s.png"])


def test_results_record_copies_stand_in_for_run_folders(tmp_path):
    """Run folders are not committed: RECORD.config.json + RECORD.history.csv (the results record's
    copies) give the same row as the folder they were copied from."""
    base = _run(tmp_path, "base", [0.5, 0.6, 0.7], [10, 10, 10])
    var = _run(tmp_path, "var", [0.6, 0.7, 0.8], [12, 12, 12], batch_size=64)
    rec = tmp_path / "record"
    rec.mkdir()
    for run in (base, var):
        for name in ("config.json", "history.csv"):
            (rec / f"train-{run.name}.{name}").write_bytes((run / name).read_bytes())
    from_folders = sweep([var], base)
    from_record = sweep([rec / "train-var"], rec / "train-base")
    assert [r["run"] for r in from_record] == ["train-base", "train-var"]
    for a, b in zip(from_folders, from_record):
        assert {k: v for k, v in a.items() if k != "run"} == {k: v for k, v in b.items() if k != "run"}
    assert from_record[1]["changes"] == {"batch_size": 64}
    # a record with no history copy: one line naming the missing file
    (rec / "train-var.history.csv").unlink()
    with pytest.raises(Exception, match="train-var.history.csv"):
        sweep([rec / "train-var"], rec / "train-base")


def test_times_on_another_machine_give_no_ratio(tmp_path):
    """Speeds compare as ratios on one machine only: a run trained elsewhere (or on a machine its
    config does not name, as older configs do) keeps its own times but gets no ratio."""
    base = _run(tmp_path, "base", [0.5, 0.6], [10, 10])
    same = _run(tmp_path, "same", [0.5, 0.6], [12, 12], device={"cpu": "Test CPU", "arch": "x86_64", "cores": 2,
                                                                "os": "another kernel"})
    other = _run(tmp_path, "other", [0.5, 0.6], [5, 5], device={"cpu": "Faster CPU", "arch": "x86_64", "cores": 2})
    unknown = _run(tmp_path, "unknown", [0.5, 0.6], [5, 5], device=None)
    # one model name, other vector units (two "AMD EPYC" VMs, AVX-512 and AVX2-only)
    other_isa = _run(tmp_path, "other_isa", [0.5, 0.6], [5, 5], device={"cpu": "Test CPU", "arch": "x86_64",
                                                                        "cores": 2, "isa": "avx avx2 fma"})
    rows = {r["run"]: r for r in sweep([same, other, unknown, other_isa], base)}
    assert rows["same"]["epoch_time_ratio"] == pytest.approx(1.2) and rows["same"]["time_ratio"] == pytest.approx(1.2)
    for name in ("other", "unknown", "other_isa"):
        r = rows[name]
        assert (r["same_machine"], r["epoch_time_ratio"], r["time_ratio"]) == (False, None, None)
        assert r["median_epoch_s"] == 5 and r["delta_pt"] == 0  # its own figures stay
    table = markdown(list(rows.values()))
    assert "| 5.0 s (other machine) | 0.2 min (other machine) |" in table
    assert "| 5.0 s (machine not recorded) |" in table and "12.0 s (1.20x)" in table
