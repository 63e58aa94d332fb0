"""The study's collect/report logic on a hand-made results set (fast), and its CLI's bad input."""
import json
import subprocess
import sys

import pytest

from study.collect import summarize
from study.report import markdown, write_report


def _record(arch, recipe, act, seed, acc, int8_acc, ops=None, val=(0.5, 0.6, 0.7)):
    ops = ops or {"CONV_2D": 2, "MUL": 2}
    return {"arch": arch, "recipe": recipe, "act": act, "seed": seed, "run": "r",
            "train": {"test_accuracy": acc},
            "history": [{"epoch": i + 1, "val_accuracy": v, "accuracy": v, "seconds": 10.0} for i, v in enumerate(val)],
            "convergence": {"0.60": {"epoch": 2, "seconds": 20.0} if max(val) >= 0.6 else None},
            "artifacts": [
                {"model": "tflite/float32", "format": "tflite", "mode": "float32", "size_bytes": 170000,
                 "test_accuracy": acc, "agreement": 1.0, "drop_pt": 0.0, "op_counts": dict(ops), "bn_leftovers": [],
                 "latency_ms_p50": 0.1, "bench_accuracy": acc},
                {"model": "tflite/int8", "format": "tflite", "mode": "int8", "size_bytes": 50000,
                 "test_accuracy": int8_acc, "agreement": 0.98, "drop_pt": round(100 * (acc - int8_acc), 3),
                 "op_counts": dict(ops), "bn_leftovers": [], "latency_ms_p50": 0.04, "bench_accuracy": int8_acc}]}


@pytest.fixture
def records():
    rs = []
    for s, (t, r) in enumerate([(0.70, 0.69), (0.72, 0.70), (0.74, 0.71)]):
        rs.append(_record("seed", "seed", "tanhexp", s, t, t - 0.001))
        rs.append(_record("seed", "seed", "relu", s, r, r - 0.010))  # 1.0 pt int8 drop: must be flagged
        rs.append(_record("seed", "strong", "tanhexp", s, t + 0.05, t + 0.05, ops={"CONV_2D": 2, "MUL": 4}))
        rs.append(_record("seed", "strong", "relu", s, r + 0.05, r + 0.05, val=(0.4, 0.5, 0.55)))
        for r_ in rs[-2:]:
            r_["precision"] = "mixed_bfloat16"
    return rs


def test_summary_statistics_and_checks(records):
    s = summarize(records, ["tanhexp", "relu"])
    keras = next(p for p in s["paired"] if (p["recipe"], p["model"]) == ("seed", "keras"))
    assert keras["n"] == 3 and keras["mean_diff"] == pytest.approx(0.02)  # diffs .01 .02 .03, as test_stats
    assert keras["verdict"] == "not significant"
    cell = next(a for a in s["accuracy"] if (a["recipe"], a["model"], a["act"]) == ("seed", "keras", "relu"))
    assert cell["mean"] == pytest.approx(0.70) and cell["std"] == pytest.approx(0.01)
    bad = [d for d in s["int8_drop"] if not d["ok"]]
    assert {d["cell"] for d in bad} == {"seed-seed-relu-s0", "seed-seed-relu-s1", "seed-seed-relu-s2"}
    # BN folding: the strong TanhExp models have 2 extra MULs vs their BN-free twin -> not folded
    bn_bad = {b["cell"] for b in s["bn_folding"] if not b["ok"]}
    assert bn_bad == {f"seed-strong-tanhexp-s{i}" for i in range(3)}
    conv = {(c["recipe"], c["act"]): c for c in s["convergence"]}
    assert conv[("strong", "relu")]["reached"] == 0 and conv[("seed", "relu")]["epoch_mean"] == 2


def test_report_writes_markdown_and_plots(records, tmp_path):
    results = {"created": "now", "device": {"cpu": "x", "cores": 2}, "versions": {}, "git_commit": "abc",
               "config": {"archs": ["seed"], "recipes": ["seed", "strong"], "acts": ["tanhexp", "relu"], "seeds": 3,
                          "arch_seeds": {}, "formats": ["tflite"], "quick": False},
               "cells": records, "summary": summarize(records, ["tanhexp", "relu"])}
    md = markdown(results)
    assert "| keras | 72.00 ± 2.00" in md            # tanhexp seed/seed mean 72 %, std 2
    assert "68.49" in md and "69.13" in md          # the seed's published figures beside ours
    assert "3 lose more than 0.5 points" in md
    assert "NOT FOLDED: seed-strong-tanhexp-s0" in md
    assert "Training precision: seed/seed float32; seed/strong mixed_bfloat16." in md
    # a config from before the calibration options: what that study ran with, only its formats
    assert "Quantization: int8 calibrated on 500 training images; TFLite int8 activation ranges min/max; QAT" in md
    results["config"].update(formats=["tflite", "onnx"], archs=["seed", "resnet8"], onnx_calib_percentile=99.99,
                             arch_calib_size={"resnet8": 2000}, arch_tflite_calib_percentile={"resnet8": 99.99},
                             arch_onnx_calib_percentile={"vgg": 99.9})  # not a study arch: not reported
    assert ("Quantization: int8 calibrated on 500 (resnet8: 2000) training images; TFLite int8 activation ranges "
            "min/max (resnet8: at the 99.99th percentile); ONNX int8 activation ranges at the 99.99th percentile; "
            "QAT 2 epochs.") in markdown(results)
    write_report(results, tmp_path)
    for name in ("report.md", "curves.png", "precision.png", "latency.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


@pytest.mark.parametrize("argv,needle", [
    (["--acts", "tanhexp,gelu"], "--acts"), (["--seeds", "0"], "--seeds"), (["--recipes", "fancy"], "--recipes"),
    (["--epochs", "-1"], "--epochs"), (["--arch-seeds", "resnet8=1"], "unrecognized arguments: --arch-seeds"),
    (["--config", "{d}/nope.json"], "nope.json"), (["--config", "{d}/list.json"], "want a JSON object"),
    (["--config", "{d}/bad.json"], "not JSON"), (["--config", "{d}/typo.json"], "unknown settings sedes"),
    (["--config", "{d}/recipes.json"], "arch_recipes: unknown or empty ['fancy']"),
    (["--config", "{d}/thresholds.json"], "thresholds must be in (0, 1)"),
])
def test_cli_bad_input_is_one_line(argv, needle, tmp_path):
    for name, text in (("list", "[]"), ("bad", "{seeds: 3"), ("typo", '{"sedes": 3}'),
                       ("recipes", '{"arch_recipes": {"resnet8": ["fancy"]}}'), ("thresholds", '{"thresholds": [1.5]}')):
        (tmp_path / f"{name}.json").write_text(text)
    argv = [a.replace("{d}", str(tmp_path)) for a in argv]
    p = subprocess.run([sys.executable, "-m", "study", "--out", str(tmp_path / "s"), *argv],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
    assert not (tmp_path / "s").exists()


def test_ablation_reads_validation_only(tmp_path):
    from experiments.ablation import ablation, markdown

    def run(name, vals, test_acc):
        d = tmp_path / name
        d.mkdir()
        rows = "".join(f"{i + 1},{v},1.0\n" for i, v in enumerate(vals))
        (d / "history.csv").write_text("epoch,val_accuracy,seconds\n" + rows)
        (d / "metrics.json").write_text(json.dumps({"test_accuracy": test_acc}))

    run("seed-strong-tanhexp-s0", [0.5, 0.6, 0.70, 0.72, 0.74, 0.76, 0.78], 0.99)
    run("seed-strong-no-bn-tanhexp-s0", [0.5, 0.6, 0.65, 0.66, 0.67, 0.68, 0.69], 0.10)
    rows = {r["recipe"]: r for r in ablation(tmp_path, "seed", "tanhexp", 0)}
    assert set(rows) == {"strong", "strong-no-bn"}
    assert rows["strong"]["last5_mean"] == pytest.approx(0.74) and rows["strong"]["best_epoch"] == 7
    assert rows["strong-no-bn"]["delta_vs_strong_pt"] == pytest.approx(-7.0)
    assert "99" not in markdown(list(rows.values()), "seed", "tanhexp", 0)  # test accuracy never shown


def test_mode_names_match_export():
    from export.formats import FORMATS
    from study.config import MODES
    assert {f: tuple(m) for f, m in FORMATS.items()} == MODES


def test_quick_fills_defaults_only():
    from study.config import StudyConfig
    assert StudyConfig(quick=True).epochs == 1
    cfg = StudyConfig(quick=True, epochs=0)
    assert cfg.epochs == 0
    with pytest.raises(ValueError, match="--epochs"):
        cfg.validate()
    with pytest.raises(ValueError, match="--modes.*int4"):
        StudyConfig(modes=["int4"]).validate()


def test_study_refuses_a_finished_run_of_another_recipe(tmp_path):
    from study.config import StudyConfig
    from study.run import Cell, StudyError, trained

    run = tmp_path / "seed-tanhexp-s0"
    run.mkdir()
    (run / "metrics.json").write_text("{}")
    (run / "model.keras").write_bytes(b"x")
    (run / "config.json").write_text(json.dumps({"act": "tanhexp", "arch": "seed", "seed": 0, "epochs": 50}))
    cell = Cell("seed", "seed", "tanhexp", 0)
    assert trained(StudyConfig(), cell, run)  # keys the run predates ("recipe") take train's defaults
    with pytest.raises(StudyError, match="epochs"):
        trained(StudyConfig(epochs=7), cell, run)
    assert not trained(StudyConfig(), cell, tmp_path / "absent")


def test_study_refuses_a_run_of_a_recipe_since_redefined(tmp_path):
    import dataclasses

    from study.config import StudyConfig
    from study.run import Cell, StudyError, train_cmd, trained
    from train.recipes import RECIPES

    run = tmp_path / "seed-strong-tanhexp-s0"
    run.mkdir()
    (run / "metrics.json").write_text("{}")
    (run / "model.keras").write_bytes(b"x")
    now = dataclasses.asdict(RECIPES["strong"])
    cfg = {"act": "tanhexp", "arch": "seed", "recipe": "strong", "seed": 0, "epochs": 50, "recipe_settings": now}
    (run / "config.json").write_text(json.dumps(cfg))
    cell = Cell("seed", "strong", "tanhexp", 0)
    assert trained(StudyConfig(), cell, run)
    (run / "config.json").write_text(json.dumps({**cfg, "recipe_settings": {**now, "weight_decay": 123.0}}))
    with pytest.raises(StudyError, match="recipe_settings"):
        trained(StudyConfig(), cell, run)
    assert "--mixed-precision" in train_cmd(StudyConfig(mixed_precision=True), cell, run)
    assert "--mixed-precision" not in train_cmd(StudyConfig(), cell, run)


def test_cells_follow_per_arch_recipes_and_seeds():
    from study.config import StudyConfig
    from study.run import cells
    cfg = StudyConfig(archs=["seed", "resnet8"], recipes=["seed", "strong"], seeds=3,
                      arch_seeds={"resnet8": 1}, arch_recipes={"resnet8": ["strong"]})
    cfg.validate()
    got = {c.name for c in cells(cfg)}
    assert {c for c in got if c.startswith("resnet8")} == {"resnet8-strong-tanhexp-s0", "resnet8-strong-relu-s0"}
    assert len(got) == 2 * 2 * 3 + 2
    assert cfg.epochs_for("resnet8") == 140 and cfg.epochs_for("seed") == 50
