"""The trainer end to end on tiny data: run folder contents, resume after kill -9, refusals,
distribution strategies on logical CPU devices, and the CLI's one-line errors."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _env(tmp_path, data):
    env = {**os.environ, "EDGECNN_DATA": str(data), "EDGECNN_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return env


def _train_cmd(out, epochs=3, *extra):
    return [sys.executable, "-m", "train", "--act", "tanhexp", "--epochs", str(epochs), "--val-size", "40",
            "--out", str(out), "--verbose", "0", "--deterministic", *extra]


def _history(run):
    import csv
    with open(run / "history.csv") as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


def test_run_folder_contents(tmp_path, tiny_folder):
    from train.config import TrainConfig
    from train.loop import train
    os.environ["EDGECNN_DATA"] = str(tiny_folder)
    try:
        m = train(TrainConfig(act="relu", epochs=2, val_size=40, out=str(tmp_path / "r"), verbose=0))
    finally:
        del os.environ["EDGECNN_DATA"]
    run = tmp_path / "r"
    for f in ("model.keras", "config.json", "history.csv", "metrics.json", "accuracy.png", "tb"):
        assert (run / f).exists(), f
    saved = json.loads((run / "metrics.json").read_text())
    for key in ("test_accuracy", "best_val_accuracy", "best_val_epoch", "epochs", "wall_time_s",
                "images_per_s", "trained_on", "versions", "git_commit", "git_commit_at_start", "device", "data"):
        assert key in saved, key
    assert saved["git_commit_at_start"] == saved["git_commit"]  # nothing moved the checkout meanwhile
    assert saved["epochs"] == 2 and m["params"] == 42_442
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["act"] == "relu"
    # the machine, for study.sweep's time ratios: the one metrics.json names, less kernel and host
    assert cfg["device"] == {k: saved["device"][k] for k in ("cpu", "arch", "cores", "isa")}
    assert _history(run) == [1, 2]


def test_resume_after_kill_loses_and_repeats_nothing(tmp_path, tiny_folder):
    env = _env(tmp_path, tiny_folder)
    ref, run = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_train_cmd(ref), env=env, check=True, timeout=300)

    p = subprocess.Popen(_train_cmd(run), env=env)
    deadline = time.time() + 240
    while time.time() < deadline and p.poll() is None:
        ck = run / "ckpt" / "checkpoint"
        if ck.exists() and "ckpt-1" in ck.read_text():
            p.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL, "the run finished before it could be interrupted"
    assert not (run / "metrics.json").exists()
    done_before = _history(run)
    assert done_before and done_before[-1] < 3

    subprocess.run(_train_cmd(run), env=env, check=True, timeout=300)
    assert _history(run) == [1, 2, 3]
    a = json.loads((ref / "metrics.json").read_text())
    b = json.loads((run / "metrics.json").read_text())
    assert b["epochs"] == 3
    # Deterministic ops + per-epoch seeded order: the resumed run is the uninterrupted run.
    assert a["test_accuracy"] == b["test_accuracy"] and a["test_loss"] == pytest.approx(b["test_loss"], abs=1e-6)


def test_finished_run_is_not_redone_and_other_runs_are_refused(tmp_path, tiny_folder):
    env = _env(tmp_path, tiny_folder)
    run = tmp_path / "r"
    subprocess.run(_train_cmd(run, 1), env=env, check=True, timeout=300)
    mtime = (run / "model.keras").stat().st_mtime_ns
    again = subprocess.run(_train_cmd(run, 1), env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "nothing to do" in again.stderr
    assert (run / "model.keras").stat().st_mtime_ns == mtime
    other = subprocess.run(_train_cmd(run, 2), env=env, capture_output=True, text=True, timeout=300)
    assert other.returncode == 2 and "different run" in other.stderr and "Traceback" not in other.stderr


@pytest.mark.parametrize("args,needle", [
    (["--epochs", "0"], "--epochs"),
    (["--batch-size", "-5"], "--batch-size"),
    (["--act", "swish"], "--act"),
    (["--arch", "vgg99"], "--arch"),
    (["--data", "/no/such/data"], "/no/such/data"),
    (["--val-size", "-1"], "--val-size"),
    (["--ema", "1.5"], "--ema"),
])
def test_cli_bad_input_is_one_line(tmp_path, tiny_folder, args, needle):
    env = _env(tmp_path, tiny_folder)
    r = subprocess.run([sys.executable, "-m", "train", "--out", str(tmp_path / "x"), *args], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("error")]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr, r.stderr


STRATEGY_SCRIPT = r"""
import os, sys, json
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from train.distribute import choose, make_strategy
from train.config import TrainConfig
from train.loop import train
assert choose(0, 0) == "default" and choose(1, 0) == "default"
assert choose(2, 0) == "mirrored" and choose(0, 3) == "multiworker" and choose(4, 2) == "multiworker"
devs = [d.name for d in tf.config.list_logical_devices("CPU")]
# with weight averaging: its swap and finalize run on mirrored variables too
m = train(TrainConfig(act="tanhexp", epochs=1, val_size=40, ema=0.9, out=sys.argv[1], verbose=0),
          strategy_name="mirrored", devices=devs)
print(json.dumps({"strategy": m["strategy"], "trained_on": m["trained_on"], "epochs": m["epochs"]}))
"""


def test_mirrored_strategy_on_two_logical_cpus(tmp_path, tiny_folder):
    r = subprocess.run([sys.executable, "-c", STRATEGY_SCRIPT, str(tmp_path / "r")],
                       env=_env(tmp_path, tiny_folder), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["strategy"] == "mirrored" and out["trained_on"].startswith("2 replica(s)") and out["epochs"] == 1


def test_tf_config_with_several_workers_selects_multiworker():
    from train.distribute import choose, workers_in_tf_config
    cfg = json.dumps({"cluster": {"worker": ["localhost:1", "localhost:2"]}, "task": {"type": "worker", "index": 0}})
    assert workers_in_tf_config({"TF_CONFIG": cfg}) == 2
    assert choose(0, workers_in_tf_config({"TF_CONFIG": cfg})) == "multiworker"
    assert workers_in_tf_config({}) == 0
    with pytest.raises(ValueError):
        workers_in_tf_config({"TF_CONFIG": "{not json"})
    assert np.isfinite(1.0)
