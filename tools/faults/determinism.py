"""python -m tools.faults.determinism: which figures come out bit-identical when a command is run twice.

On tiny synthetic data (tools/faults/kill_targets.py's inputs), each in its own process as a user
would run it: training with --deterministic (two runs, seed 0; one run, seed 1) and without
it (two runs, seed 0); two exports of one model in every TFLite and ONNX mode (int8
calibration and QAT included); two benches of one bundle. Records the sha256s and the
equalities in a JSON document (docs/results/determinism-x86.json; docs/faults-kill.md).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.faults.kill_checks import keras_weights
from tools.faults.kill_targets import PY, Inputs
from runtime.errors import one_line
from runtime.fileio import write_json
from runtime.provenance import cpu_model, git_commit, versions
from runtime.cli import Parser

EPOCHS = 3
BENCH_FIGURES = ("accuracy", "parity_accuracy", "agreement_ref", "mean_abs_diff_ref", "max_abs_diff_ref")


def _run(cmd: list[str], env: dict, log) -> None:
    print(f"$ {' '.join(cmd)}", file=log, flush=True)
    r = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise RuntimeError(f"exit {r.returncode}: {' '.join(cmd)}")


def train_cmd(data: Path, out: Path, seed: int, deterministic: bool) -> list[str]:
    return [PY, "-m", "train", "--act", "tanhexp", "--data", str(data), "--epochs", str(EPOCHS), "--batch-size", "20",
            "--val-size", "40", "--seed", str(seed), "--out", str(out), "--verbose", "0",
            *(["--deterministic"] if deterministic else [])]


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = keras_weights(a / "model.keras"), keras_weights(b / "model.keras")
    return len(wa) == len(wb) and all(x.dtype == y.dtype and x.tobytes() == y.tobytes() for x, y in zip(wa, wb))


def training(inputs: Inputs, work: Path, env: dict, log) -> dict:
    runs = {"det-s0-a": (0, True), "det-s0-b": (0, True), "det-s1": (1, True), "plain-s0-a": (0, False),
            "plain-s0-b": (0, False)}
    for name, (seed, det) in runs.items():
        _run(train_cmd(inputs.data(), work / name, seed, det), env, log)
    acc = {n: json.loads((work / n / "metrics.json").read_text())["test_accuracy"] for n in runs}
    return {
        "epochs": EPOCHS,
        "deterministic_same_seed_identical": same_weights(work / "det-s0-a", work / "det-s0-b"),
        "deterministic_other_seed_differs": not same_weights(work / "det-s0-a", work / "det-s1"),
        "plain_same_seed_identical": same_weights(work / "plain-s0-a", work / "plain-s0-b"),
        "plain_equals_deterministic": same_weights(work / "plain-s0-a", work / "det-s0-a"),
        "test_accuracy": acc,
    }


def exports(run: Path, work: Path, env: dict, log) -> dict:
    outs = [work / "export-a", work / "export-b"]
    for out in outs:
        for fmt in ("tflite", "onnx"):
            _run([PY, "-m", "export", "--format", fmt, "--run", str(run), "--out", str(out), "--calib-size", "40",
                  "--qat-epochs", "1", "--parity-batch", "25"], env, log)
    ma, mb = (json.loads((o / "manifest.json").read_text()) for o in outs)
    b_by_file = {x["file"]: x for x in mb["artifacts"]}
    per_file = {}
    for a in ma["artifacts"]:
        b = b_by_file[a["file"]]
        per_file[a["file"]] = {"sha256_identical": a["sha256"] == b["sha256"], "parity_identical": a["parity"] == b["parity"],
                               "sha256": [a["sha256"], b["sha256"]]}
    return {"artifacts": per_file,
            "test_npz_identical": ma["test_split"]["sha256"] == mb["test_split"]["sha256"],
            "reference_npz_identical": ma["reference"]["sha256"] == mb["reference"]["sha256"]}


def benches(bundle: Path, work: Path, env: dict, log) -> dict:
    docs = []
    for i in range(2):
        out = work / f"bench-{i}.json"
        _run([PY, "-m", "runtime.bench", "--bundle", str(bundle), "--runs", "20", "--warmup", "2", "--json", str(out),
              "--no-progress"], env, log)
        docs.append(json.loads(out.read_text()))
    rows = [{r["file"]: r for r in d["rows"]} for d in docs]
    per_file = {f: {k: rows[0][f].get(k) == rows[1][f].get(k) for k in BENCH_FIGURES} for f in rows[0]}
    return {"figures": list(BENCH_FIGURES), "identical": per_file,
            "agreement_matrix_identical": docs[0]["agreement"] == docs[1]["agreement"],
            "latency_p50_ms": {f: [rows[0][f].get("latency_ms_p50"), rows[1][f].get("latency_ms_p50")] for f in rows[0]}}


def measure(work: Path, log) -> dict:
    inputs = Inputs(work)
    env = {k: v for k, v in inputs.env(work / "tmp").items() if k != "PYTHONHASHSEED"}  # each process its own
    t0 = time.perf_counter()
    doc = {"schema": "edgecnn-determinism/1",
           "command": "python -m tools.faults.determinism " + " ".join(sys.argv[1:]),
           "data": "synthetic image folder: 400 train (40 held out for validation) / 100 test images, 32x32",
           "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "versions": versions(), "git_commit": git_commit()}}
    doc["training"] = training(inputs, work, env, log)
    doc["export"] = exports(work / "det-s0-a", work, env, log)
    doc["bench"] = benches(work / "export-a", work, env, log)
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    return doc


def main(argv=None) -> int:
    p = Parser(prog="python -m tools.faults.determinism", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", metavar="PATH", help="write the record here")
    p.add_argument("--work", metavar="DIR", help="work folder, kept (default: a temporary one, removed)")
    a = p.parse_args(argv)
    work = Path(a.work or tempfile.mkdtemp(prefix="edgecnn-determinism-"))
    try:
        work.mkdir(parents=True, exist_ok=True)
        with open(work / "log.txt", "a") if a.work else open(os.devnull, "w") as log:
            doc = measure(work, log)
        if a.json:
            write_json(a.json, doc)
    except (RuntimeError, OSError) as e:
        print(f"error: {one_line(e, with_type=False)}", file=sys.stderr)
        return 1
    finally:
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({k: doc[k] for k in ("training",)}, indent=1))
    for f, v in doc["export"]["artifacts"].items():
        print(f"export {f}: sha256 {'identical' if v['sha256_identical'] else 'DIFFERS'}")
    for f, v in doc["bench"]["identical"].items():
        print(f"bench {f}: {', '.join(k for k, same in v.items() if not same) or 'all accuracy figures identical'}")
    return 0


if __name__ == "__main__":
    from runtime.quietlog import native_logs_filtered
    with native_logs_filtered():  # the checks load TensorFlow, whose native log lines bury the table
        sys.exit(main())
