"""The commands tools/faults/kill.py kills: what each runs, when to kill it, and how to judge it.

A target is a command sequence (the CLIs a user types), the inputs it needs (tiny synthetic
data, made once), `events` worth killing at (a file-system sign that a write is under way or
has just finished, polled while the command runs), a `check` of its output folder (from
tools/faults/kill_checks.py) and a `compare` of a killed-and-rerun folder against an uninterrupted
reference: what was kept, what was redone, and whether the results are equal.
"""
from __future__ import annotations

import fnmatch
import json
import os
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.faults import kill_checks as chk
from train.data import CLASSES  # no TensorFlow behind it

PY = sys.executable
REPO = Path(__file__).resolve().parents[2]
TRAIN_EPOCHS = 5


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each class a tint plus noise: learnable in an epoch or two, so training moves weights
    (and int8 vs float agreement measures something). The export tests' data too."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    tint = np.random.default_rng(7).uniform(30, 225, (10, 3))
    x = tint[y][:, None, None, :] + rng.normal(0, 30, (n, 32, 32, 3))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8), y.astype(np.int64)


def write_imagefolder(root: Path, n_train: int, n_test: int) -> Path:
    from PIL import Image
    for split, (x, y) in (("train", synthetic(n_train, 1)), ("test", synthetic(n_test, 2))):
        for i, (img, lab) in enumerate(zip(x, y)):
            d = root / split / CLASSES[lab]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{i:04d}.png")
    return root


class Inputs:
    """Shared, read-only inputs under WORK/inputs, made on first use."""

    def __init__(self, work: Path):
        self.root = work / "inputs"
        self.cache = self.root / "cache"  # the decoded-data cache of every target but `cache`

    def env(self, tmp: Path, cache: Path | None = None) -> dict:
        tmp.mkdir(parents=True, exist_ok=True)
        return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                "EDGECNN_CACHE": str(cache or self.cache), "TMPDIR": str(tmp), "TF_CPP_MIN_LOG_LEVEL": "3",
                "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}

    def data(self) -> Path:
        d = self.root / "data"
        if not (d / "done").exists():
            write_imagefolder(d, 400, 100)
            (d / "done").touch()
        return d

    def cache_tar(self) -> Path:
        """A larger archive, so that decoding and writing the cache take a killable while."""
        t = self.root / "cifar-big.tar.gz"
        if not t.exists():
            src = write_imagefolder(self.root / "big", 2000, 500)
            with tarfile.open(t.with_suffix(".part"), "w:gz") as tf:
                tf.add(src, arcname="cifar")
            t.with_suffix(".part").rename(t)
        return t


@dataclass
class Event:
    """Kill when `sign` matches under the output folder, after up to `max_delay` s (seeded)."""
    label: str
    sign: object          # callable(dest) -> bool
    max_delay: float = 0.0


def has(pattern: str, sub: str = "."):
    def sign(dest: Path) -> bool:
        d = dest / sub
        try:
            return any(fnmatch.fnmatch(n, pattern) for n in os.listdir(d))
        except OSError:
            return False
    return sign


def _rows(path: Path) -> int:
    try:
        return max(0, len(path.read_text().splitlines()) - 1)
    except OSError:
        return 0


def _ckpt_named(dest: Path, epoch: int) -> bool:
    try:
        return f'"ckpt-{epoch}"' in (dest / "ckpt" / "checkpoint").read_text()
    except OSError:
        return False


class Target:
    name = ""
    events: list[Event] = []
    # strace counts renames per process: exact for one process per command, not for a study
    # whose command starts one process per stage.
    trace_renames = True

    def __init__(self, inputs: Inputs):
        self.inputs = inputs

    def prepare(self) -> None:
        """Make the inputs (not timed, not killed)."""

    def commands(self, dest: Path) -> list[list[str]]:
        raise NotImplementedError

    def env(self, tmp: Path, dest: Path) -> dict:
        return self.inputs.env(tmp)

    def check(self, dest: Path) -> tuple[list[str], dict]:
        raise NotImplementedError

    def compare(self, dest: Path, ref: Path, at_kill: dict) -> dict:
        """{"lost": n, "redone": n, "differences": [...]} of a rerun folder against the reference."""
        raise NotImplementedError


# --- train ------------------------------------------------------------------------------

class TrainTarget(Target):
    name = "train"
    events = [
        Event("writing config.json", has(".config.json.*.tmp")),
        Event("history.csv ahead of the checkpoint", lambda d: _rows(d / "history.csv") > 0
              and not _ckpt_named(d, _rows(d / "history.csv"))),
        Event("writing history.csv", has(".history.csv.*.tmp")),
        Event("writing a checkpoint", lambda d: has("*_temp", "ckpt")(d) or has("*.tempstate*", "ckpt")(d)),
        Event("just after checkpoint 2", lambda d: _ckpt_named(d, 2)),
        Event(f"just after checkpoint {TRAIN_EPOCHS}", lambda d: _ckpt_named(d, TRAIN_EPOCHS)),
        Event("writing accuracy.png", has(".accuracy.png.*.tmp")),
        Event("saving model.keras", has(".model.*.partial.keras")),
        Event("writing metrics.json", has(".metrics.json.*.tmp")),
    ]

    def commands(self, dest):
        return [[PY, "-m", "train", "--act", "tanhexp", "--data", str(self.inputs.data()), "--epochs",
                 str(TRAIN_EPOCHS), "--batch-size", "20", "--val-size", "40", "--out", str(dest),
                 "--verbose", "0", "--deterministic"]]

    def check(self, dest):
        return chk.check_run(dest)

    def compare(self, dest, ref, at_kill):
        diffs, problems = [], []
        rows, want = chk.read_history(dest / "history.csv", problems), chk.read_history(ref / "history.csv", problems)
        kept_upto = at_kill.get("ckpt_epoch") or 0
        # A checkpointed epoch is kept when its row survives byte for byte, time included:
        # retrained, it would show another time.
        lost = sum(1 for r in at_kill.get("history", [])[:kept_upto]
                   if int(r["epoch"]) > len(rows) or rows[int(r["epoch"]) - 1] != r)
        redone = max(0, len(at_kill.get("history", [])) - kept_upto)
        strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
        if strip(rows) != strip(want):
            diffs.append("history.csv differs from the uninterrupted run's")
        a, b = chk.keras_weights(dest / "model.keras"), chk.keras_weights(ref / "model.keras")
        if len(a) != len(b) or any(x.tobytes() != y.tobytes() for x, y in zip(a, b)):
            diffs.append("final weights differ from the uninterrupted run's")
        ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (dest, ref))
        for k in ("test_accuracy", "test_loss", "best_val_accuracy", "best_val_epoch", "epochs"):
            if ma.get(k) != mb.get(k):
                diffs.append(f"metrics.json {k}: {ma.get(k)} vs {mb.get(k)}")
        return {"lost": lost, "redone": redone, "differences": problems + diffs}


# --- export -----------------------------------------------------------------------------

EXPORT_MODES = {"tflite": ("float32", "int8"), "onnx": ("float32", "int8")}


def _ignore_seconds(x):
    if isinstance(x, dict):
        return {k: _ignore_seconds(v) for k, v in x.items() if "seconds" not in k}
    if isinstance(x, list):
        return [_ignore_seconds(v) for v in x]
    return x


def _unlisted_final(dest: Path) -> bool:
    try:
        listed = {a["file"] for a in json.loads((dest / "manifest.json").read_text())["artifacts"]}
    except (OSError, ValueError, KeyError):
        listed = set()
    return any(p.suffix in (".tflite", ".onnx") and p.name not in listed for p in dest.glob("*"))


class ExportTarget(Target):
    name = "export"
    events = [
        Event("converting float32.tflite", has(".float32.tflite.*.tmp"), 1.0),
        Event("writing test.npz", has(".test.npz.*.tmp")),
        Event("artifact renamed, not yet in the manifest", _unlisted_final),
        Event("writing manifest.json", has(".manifest.json.*.tmp")),
        Event("converting int8.tflite", has(".int8.tflite.*.tmp"), 2.0),
        Event("converting float32.onnx", has(".float32.onnx.*.tmp"), 1.0),
        Event("converting int8.onnx", has(".int8.onnx.*.tmp"), 2.0),
    ]

    def source_run(self) -> Path:
        return self.inputs.root / "run"

    def prepare(self):
        import subprocess
        run = self.source_run()
        if not (run / "metrics.json").exists():
            cmd = [PY, "-m", "train", "--act", "tanhexp", "--data", str(self.inputs.data()), "--epochs", "3",
                   "--batch-size", "20", "--val-size", "40", "--out", str(run), "--verbose", "0", "--deterministic"]
            subprocess.run(cmd, env=self.inputs.env(self.inputs.root / "tmp"), check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def commands(self, dest):
        return [[PY, "-m", "export", "--format", fmt, "--quant", *modes, "--run", str(self.source_run()),
                 "--out", str(dest), "--calib-size", "40", "--parity-batch", "25"]
                for fmt, modes in EXPORT_MODES.items()]

    def check(self, dest):
        return chk.check_bundle(dest)

    def compare(self, dest, ref, at_kill):
        diffs = []
        got, want = (json.loads((d / "manifest.json").read_text()) for d in (dest, ref))
        by_file = {a["file"]: a for a in got["artifacts"]}
        lost = sum(1 for f, sha in at_kill.get("listed", {}).items()
                   if (by_file.get(f) or {}).get("sha256") != sha)
        redone = len(at_kill.get("listed", {}))  # export converts every requested mode again
        for a in want["artifacts"]:
            b = by_file.get(a["file"])
            if b is None:
                diffs.append(f"{a['file']}: missing after the rerun")
            elif b["sha256"] != a["sha256"]:
                diffs.append(f"{a['file']}: sha256 differs from the uninterrupted export's")
            elif _ignore_seconds(b) != _ignore_seconds(a):
                diffs.append(f"{a['file']}: manifest entry differs beyond timings")
        if len(got["artifacts"]) != len(want["artifacts"]):
            diffs.append(f"{len(got['artifacts'])} artifacts vs {len(want['artifacts'])}")
        for key in ("test_split", "reference"):
            if got.get(key) != want.get(key):
                diffs.append(f"manifest {key} differs")
        return {"lost": lost, "redone": redone, "differences": diffs}


# --- the data cache ---------------------------------------------------------------------

LOAD = "import sys; from train.data import load; print(load(sys.argv[1], 40, 0).describe())"


class CacheTarget(Target):
    """The loader as train and export call it, into an empty cache folder (the output here)."""
    name = "cache"
    events = [Event("writing the cache .npz", has(".cifar10-*.npz.*.tmp")),
              Event("writing the cache .npz (later)", has(".cifar10-*.npz.*.tmp"), 0.05)]

    def prepare(self):
        self.inputs.cache_tar()

    def commands(self, dest):
        return [[PY, "-c", LOAD, str(self.inputs.cache_tar())]]

    def env(self, tmp, dest):
        return self.inputs.env(tmp, cache=dest)

    def check(self, dest):
        return chk.check_cache(dest)

    def compare(self, dest, ref, at_kill):
        got, want = chk.check_cache(dest)[1]["entries"], chk.check_cache(ref)[1]["entries"]
        lost = sum(1 for f, v in at_kill.get("entries", {}).items() if got.get(f) != v)
        diffs = [] if got == want else [f"cache entries differ: {sorted(got)} vs {sorted(want)}"]
        return {"lost": lost, "redone": 0 if at_kill.get("entries") else 1, "differences": diffs}


# --- the study ----------------------------------------------------------------------------

def _any_under(pattern: str):
    def sign(dest: Path) -> bool:
        return any(True for _ in dest.glob(pattern))
    return sign


def _accuracy_view(study: dict) -> dict:
    """Everything in study.json that measures the models, nothing that times them."""
    cells = [{"cell": [c["arch"], c["recipe"], c["act"], c["seed"]],
              "train": {k: c["train"].get(k) for k in ("test_accuracy", "best_val_accuracy", "best_val_epoch", "epochs")},
              "history": [{k: v for k, v in r.items() if k != "seconds"} for r in c["history"]],
              "artifacts": [{k: a.get(k) for k in ("model", "size_bytes", "test_accuracy", "agreement", "bench_accuracy")}
                            for a in c["artifacts"]]} for c in study["cells"]]
    s = study["summary"]
    return {"cells": cells, "accuracy": s.get("accuracy"), "paired": s.get("paired"), "int8_drop": s.get("int8_drop")}


class StudyTarget(Target):
    """python -m study --quick on two cells (tanhexp and relu, seed recipe, one seed), trained
    with --deterministic: every stage a child process, all killed together."""
    name = "study"
    trace_renames = False
    events = [
        Event("just after the first training", _any_under("runs/*/metrics.json")),
        Event("exporting", _any_under("runs/*/export/.*.tmp"), 1.0),
        Event("after the first bench", _any_under("study/bench/*.json")),
        Event("writing study.json", has(".study.json.*.tmp", "study")),
        Event("writing report.md", has(".report.md.*.tmp", "study")),
    ]

    def commands(self, dest):
        return [[PY, "-m", "study", "--quick", "--deterministic", "--seeds", "1", "--recipes", "seed",
                 "--data", str(self.inputs.data()), "--out", str(dest / "study"), "--runs-dir", str(dest / "runs")]]

    def check(self, dest):
        problems, state = [], {"runs": {}, "temp": chk.temp_files(dest)}
        for run in sorted((dest / "runs").glob("*")) if (dest / "runs").is_dir() else []:
            p, st = chk.check_run(run)
            problems += [f"{run.name}: {x}" for x in p]
            state["runs"][run.name] = st
            if (run / "export").is_dir():
                p, st = chk.check_bundle(run / "export")
                problems += [f"{run.name}/export: {x}" for x in p]
                state["runs"][run.name + "/export"] = st
        study = dest / "study"
        for f in sorted(study.rglob("*.json")) if study.is_dir() else []:
            if not chk.is_temp(f.name):
                chk.load_json(f, problems)
        for f in sorted(study.rglob("*.png")) if study.is_dir() else []:
            if not chk.is_temp(f.name) and not chk.png_ok(f):
                problems.append(f"{f.relative_to(dest)}: final name but a partial PNG")
        return problems, state

    def compare(self, dest, ref, at_kill):
        diffs, lost = [], 0
        for name, st in at_kill.get("runs", {}).items():
            run = dest / "runs" / name
            if "history" in st:  # checkpointed epochs must survive with their rows intact
                rows = chk.read_history(run / "history.csv", diffs)
                lost += sum(1 for r in st["history"][:st["ckpt_epoch"] or 0] if r not in rows)
            else:
                got = chk.check_bundle(run)[1]["listed"]
                lost += sum(1 for f, sha in st["listed"].items() if got.get(f) != sha)
        for name in sorted(p.name for p in (ref / "runs").iterdir()):
            a, b = chk.keras_weights(dest / "runs" / name / "model.keras"), chk.keras_weights(ref / "runs" / name / "model.keras")
            if any(x.tobytes() != y.tobytes() for x, y in zip(a, b)):
                diffs.append(f"{name}: final weights differ from the uninterrupted study's")
            ma, mb = (json.loads((d / "runs" / name / "export" / "manifest.json").read_text()) for d in (dest, ref))
            if [x["sha256"] for x in ma["artifacts"]] != [x["sha256"] for x in mb["artifacts"]]:
                diffs.append(f"{name}: exported files differ from the uninterrupted study's")
        va, vb = (_accuracy_view(json.loads((d / "study" / "study.json").read_text())) for d in (dest, ref))
        if va != vb:
            diffs.append("study.json accuracy figures differ from the uninterrupted study's")
        if not (dest / "study" / "report.md").is_file():
            diffs.append("no report.md after the rerun")
        return {"lost": lost, "redone": 0, "differences": diffs}


TARGETS = {t.name: t for t in (CacheTarget, TrainTarget, ExportTarget, StudyTarget)}
