"""Distributed training through the real `python -m train`: two logical CPU devices under
MirroredStrategy, two worker processes on 127.0.0.1 under MultiWorkerMirroredStrategy (the
same engine as on several machines, with loopback instead of a network), kill -9 of one
worker and a rerun of both, and TF_CONFIG's one-line errors."""
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from train.distribute import Cluster, choose, read_tf_config

REPO = Path(__file__).resolve().parents[2]
RUN_FILES = {"model.keras", "config.json", "history.csv", "metrics.json", "accuracy.png", "tb", "ckpt"}


def _env(tmp_path, data, **extra):
    return {**os.environ, "EDGECNN_DATA": str(data), "EDGECNN_CACHE": str(tmp_path / "cache"),
            "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "TMPDIR": str(_tmp(tmp_path)), **extra}


def _tmp(tmp_path):
    # The workers' temporary folders land here, so the test sees whether they were removed.
    d = tmp_path / "tmp"
    d.mkdir(exist_ok=True)
    return d


def _cmd(out, epochs=2, *extra):
    return [sys.executable, "-m", "train", "--act", "tanhexp", "--epochs", str(epochs), "--val-size", "40",
            "--batch-size", "20", "--out", str(out), "--verbose", "0", "--deterministic", *extra]


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _tf_config(ports, index):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def _history(run):
    with open(run / "history.csv") as f:
        return list(csv.DictReader(f))


def _start_workers(tmp_path, data, out, epochs=2):
    ports = _free_ports(2)
    return [subprocess.Popen(_cmd(out, epochs), env=_env(tmp_path, data, TF_CONFIG=_tf_config(ports, i)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]


def _finish(procs, timeout=420):
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=timeout))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    return [(p.returncode, err) for p, (_, err) in zip(procs, outs)]


def _digest(stderr):
    line = [ln for ln in stderr.splitlines() if "weights sha256" in ln][-1]
    return line.rsplit("weights sha256 ", 1)[1].strip()


# ---- the pure parts ---------------------------------------------------------------------------

def test_choose_every_branch():
    assert choose(0, 0) == "default" and choose(1, 1) == "default"
    assert choose(2, 1) == "mirrored" and choose(0, 1, cpu_replicas=2) == "mirrored"
    assert choose(0, 3) == "multiworker" and choose(4, 2) == "multiworker"


def test_tf_config_is_read_the_way_tensorflow_uses_it():
    assert read_tf_config({}) == Cluster() and read_tf_config({}).is_chief and read_tf_config({}).workers == 0
    two = read_tf_config({"TF_CONFIG": _tf_config([1111, 2222], 1)})
    assert two.workers == 2 and not two.is_chief and two.task_index == 1
    assert read_tf_config({"TF_CONFIG": _tf_config([1111, 2222], 0)}).is_chief
    chief = json.dumps({"cluster": {"chief": ["h:1"], "worker": ["h:2"]}, "task": {"type": "worker", "index": 0}})
    assert not read_tf_config({"TF_CONFIG": chief}).is_chief and read_tf_config({"TF_CONFIG": chief}).workers == 2


@pytest.mark.parametrize("raw,needle", [
    ('{"cluster": {"worker": ["127.0.0.1:1", ', "not valid JSON"),  # half-written
    ('[]', "cluster"),
    ('{"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}}', "task"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "out of range"),
    ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}', "'ps'"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "'chief'"),
])
def test_bad_tf_config_is_a_one_line_error(tmp_path, tiny_folder, raw, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        read_tf_config({"TF_CONFIG": raw})
    r = subprocess.run(_cmd(tmp_path / "r"), env=_env(tmp_path, tiny_folder, TF_CONFIG=raw),
                       capture_output=True, text=True, timeout=120)
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("error")]
    assert r.returncode == 2 and len(lines) == 1 and "TF_CONFIG" in lines[0], r.stderr[-2000:]
    assert "Traceback" not in r.stderr and not (tmp_path / "r").exists()


# ---- the real engines -------------------------------------------------------------------------

def test_mirrored_over_two_logical_cpus_through_the_cli(tmp_path, tiny_folder):
    env = _env(tmp_path, tiny_folder)
    r = subprocess.run(_cmd(tmp_path / "r", 1, "--cpu-replicas", "2"),
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["strategy"] == "mirrored" and m["trained_on"].startswith("2 replica(s) on CPU") and m["epochs"] == 1


@pytest.fixture(scope="module")
def single_run(tmp_path_factory, tiny_folder):
    tmp = tmp_path_factory.mktemp("single")
    r = subprocess.run(_cmd(tmp / "r"), env=_env(tmp, tiny_folder), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp / "r"


def test_two_workers_on_loopback_train_one_model(tmp_path, tiny_folder, single_run):
    out = tmp_path / "r"
    (rc0, err0), (rc1, err1) = _finish(_start_workers(tmp_path, tiny_folder, out))
    assert rc0 == 0 and rc1 == 0, (err0[-3000:], err1[-3000:])
    # the chief's folder is complete and has the single-worker run's shape; the other worker left nothing
    assert {p.name for p in out.iterdir()} == RUN_FILES == {p.name for p in single_run.iterdir()}
    assert list(_tmp(tmp_path).glob("edgecnn-*")) == []
    m, ref = (json.loads((d / "metrics.json").read_text()) for d in (out, single_run))
    assert m["strategy"] == "multiworker" and "2 workers" in m["trained_on"] and m["epochs"] == ref["epochs"] == 2
    assert [r["epoch"] for r in _history(out)] == ["1", "2"]
    # both workers ended with the same weights, and the chief saved exactly those
    assert _digest(err0) == _digest(err1) == m["weights_sha256"][:16]
    # the same global batch, schedule and epochs as one machine: the same loss curve up to the
    # all-reduce's float rounding (a doubled batch or a halved schedule moves it by far more)
    for a, b in zip(_history(out), _history(single_run)):
        assert abs(float(a["loss"]) - float(b["loss"])) < 2e-3, (a, b)


@pytest.mark.slow
def test_kill_one_worker_then_rerun_both_resumes(tmp_path, tiny_folder, single_run):
    out, epochs = tmp_path / "r", 6
    procs = _start_workers(tmp_path, tiny_folder, out, epochs)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "history.csv").exists() or len(_history(out)) < 2:
        assert all(p.poll() is None for p in procs), [p.communicate()[1][-2000:] for p in procs]
        assert time.time() < deadline, "no epoch finished in time"
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGKILL)  # worker 1 dies mid-run; the chief must notice, not hang
    (rc0, err0), (rc1, _) = _finish(procs, timeout=300)
    assert rc1 == -signal.SIGKILL and rc0 != 0
    assert [ln for ln in err0.splitlines() if ln.startswith("error")] and "Traceback" not in err0, err0[-3000:]
    kept = int(_history(out)[-1]["epoch"])
    assert 2 <= kept < epochs and not (out / "metrics.json").exists()

    (rc0, err0), (rc1, err1) = _finish(_start_workers(tmp_path, tiny_folder, out, epochs))
    assert rc0 == 0 and rc1 == 0, (err0[-3000:], err1[-3000:])
    assert "resuming" in err0 and "resuming" in err1
    resumed_after = int(err0.split("after epoch ")[1].split()[0])
    assert resumed_after >= kept - 1  # at most the epoch being checkpointed at the kill is redone
    assert [int(r["epoch"]) for r in _history(out)] == list(range(1, epochs + 1))
    assert _digest(err0) == _digest(err1) == json.loads((out / "metrics.json").read_text())["weights_sha256"][:16]
    assert {p.name for p in out.iterdir()} == RUN_FILES and list(_tmp(tmp_path).glob("edgecnn-*")) == []


SHARD_SCRIPT = r"""
import json, os
import numpy as np
import tensorflow as tf
strategy = tf.distribute.MultiWorkerMirroredStrategy()
from train.config import TrainConfig
from train.loop import train_dataset
x = np.arange(60, dtype=np.uint8)[:, None, None, None].repeat(32, 1).repeat(32, 2).repeat(3, 3)
ds = strategy.experimental_distribute_dataset(train_dataset(x, np.arange(60) % 10, TrainConfig(epochs=1, batch_size=20), 0))
seen = [np.round(strategy.experimental_local_results(b[0])[0].numpy()[:, 0, 0, 0] * 255).astype(int).tolist() for b in ds]
print(json.dumps(seen))
"""


def test_each_worker_gets_its_half_of_every_global_batch(tmp_path):
    ports = _free_ports(2)
    procs = [subprocess.Popen([sys.executable, "-c", SHARD_SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
                                              "TF_CONFIG": _tf_config(ports, i)}) for i in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-2000:] for _, e in outs]
    w0, w1 = (json.loads(o.strip().splitlines()[-1]) for o, _ in outs)
    from train.loop import epoch_order
    order = epoch_order(0, 0, 60)
    assert len(w0) == len(w1) == 3  # three global batches of 20 per epoch on each worker, as on one machine
    for step, (a, b) in enumerate(zip(w0, w1)):
        assert len(a) == len(b) == 10 and not set(a) & set(b)  # half each, disjoint
        assert sorted(a + b) == sorted(order[step * 20:(step + 1) * 20].tolist())  # together: the global batch
