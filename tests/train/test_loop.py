"""The trainer end to end on tiny data: run folder contents, resume after kill -9, refusals,
distribution strategies on logical CPU devices, and the CLI's one-line errors."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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
    # the machine, for experiments.sweep's time ratios: the one metrics.json names, less kernel and host
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
    (["--recipe", "strong-wd"], "--recipe"),  # an ablation: experiments only
])
def test_cli_bad_input_is_one_line(tmp_path, tiny_folder, args, needle):
    env = _env(tmp_path, tiny_folder)
    r = subprocess.run([sys.executable, "-m", "train", "--out", str(tmp_path / "x"), *args], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("error")]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr, r.stderr




def test_readme_one_liner_loads_a_run_in_a_fresh_interpreter(tmp_path, tiny_folder):
    run = tmp_path / "r"
    r = subprocess.run(_train_cmd(run, 1), env=_env(tmp_path, tiny_folder), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    readme = (REPO / "README.md").read_text()
    one_liner = 'import train; model = train.load_model("runs/seed-tanhexp-s0/model.keras")'
    assert one_liner in readme  # the test runs what the README shows, with this run's path
    code = one_liner.replace("runs/seed-tanhexp-s0/model.keras", str(run / "model.keras")) + (
        "\nimport json, sys, numpy as np\n"
        "x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype('float32') / 255\n"
        "print(json.dumps({'layers': [type(l).__name__ for l in model.layers], 'p': model.predict(x, verbose=0).tolist()}))")
    out = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path, tiny_folder), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert "TanhExp" in got["layers"]
    # the same probabilities as the trainer's own loader gives (Keras in this process, independently)
    import numpy as np
    import tf_keras as keras
    from train.activations import custom_objects
    ref = keras.models.load_model(run / "model.keras", custom_objects=custom_objects(), safe_mode=True, compile=False)
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("float32") / 255
    np.testing.assert_allclose(got["p"], ref.predict(x, verbose=0), atol=1e-6)
