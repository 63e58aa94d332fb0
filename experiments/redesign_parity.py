"""Do the commands compute what they computed before a refactor? Two commits, the same inputs.

    python -m experiments.redesign_parity --before 0ac8243 --after HEAD --json docs/results/redesign-parity.json

Each commit is unpacked (git archive) into a folder of its own and its commands run from there with
this interpreter (so the same libraries): `python -m` puts the folder first on sys.path, and the
record says which file each tree's `train` package came from. Compared, to the digit:
- train: a short deterministic run of each activation on the same data; the history's losses and
  accuracies, the test accuracy, every weight;
- export: both formats and every mode, each commit exporting a copy of the same run folder (the
  after-commit's); every artifact's sha256 and every figure of its parity entry;
- bench: the accuracy and agreement figures of each bundle's rows (latencies differ by nature);
- study --quick: one seed of the seed recipe, deterministic; every cell's accuracy figures.
Options renamed between the commits are given per commit (`STUDY_OPTIONS`): a study's settings,
not its flags, are what must be equal.
"""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runtime.cli import Parser, fail
from runtime.fileio import write_json

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "cifar10-jpeg.tar.gz"
TRAIN = ["--epochs", "2", "--limit-train", "3000", "--val-size", "500", "--deterministic", "--verbose", "0"]
# The study's ONNX int8 ranges became a default (percentile 99.99) when its flags were pruned:
# the before-commit is asked for the same setting by its flag.
STUDY_OPTIONS = {"before": ["--onnx-calib-percentile", "99.99"], "after": []}
STUDY = ["--quick", "--deterministic", "--seeds", "1", "--recipes", "seed"]
NOT_FIGURES = ("seconds", "time", "latency", "per_s", "created", "updated", "path", "commit", "versions", "device",
               "machine", "host")


def unpack(rev: str, dest: Path) -> str:
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", rev], capture_output=True, text=True,
                         check=True).stdout.strip()
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", sha, "--", ".", ":!data/*.tar.gz"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return sha


def sh(tree: Path, *args: str, log) -> float:
    t = time.time()
    r = subprocess.run([sys.executable, "-m", *args], cwd=tree, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{tree.name}: python -m {' '.join(args)} exited {r.returncode}: "
                           f"{' '.join(r.stderr.strip().splitlines()[-3:])}")
    log(f"  {tree.name}: python -m {' '.join(args[:3])} ... {time.time() - t:.0f} s")
    return time.time() - t


def figures(obj, prefix="") -> dict:
    """Every number and string in a JSON value, by path, leaving out times and provenance."""
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not any(w in k for w in NOT_FIGURES):
                out.update(figures(v, f"{prefix}{k}."))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(figures(v, f"{prefix}{i}."))
    else:
        out[prefix.rstrip(".")] = obj
    return out


def differences(a: dict, b: dict) -> list[str]:
    """The figures both sides have that differ; a figure one side lacks is listed as `added`/`removed`."""
    out = [f"{k}: {a[k]} vs {b[k]}" for k in sorted(set(a) & set(b))
           if not (a[k] == b[k] or (isinstance(a[k], float) and isinstance(b[k], float)
                                    and math.isnan(a[k]) and math.isnan(b[k])))]
    return out + [f"removed {k}" for k in sorted(set(a) - set(b))] + [f"added {k}" for k in sorted(set(b) - set(a))]


def history(run: Path) -> list[dict]:
    with open(run / "history.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


def weights_equal(a: Path, b: Path) -> tuple[bool, float]:
    import numpy as np

    import train
    wa, wb = train.load_model(a, compile=False).get_weights(), train.load_model(b, compile=False).get_weights()
    diff = max(float(np.max(np.abs(x - y))) for x, y in zip(wa, wb)) if len(wa) == len(wb) else math.inf
    return diff == 0.0 and len(wa) == len(wb), diff


def compare(before: str, after: str, work: Path, log=print) -> dict:
    trees = {"before": work / "before", "after": work / "after"}
    commits = {k: unpack(rev, trees[k]) for k, rev in (("before", before), ("after", after))}
    where = {k: subprocess.run([sys.executable, "-c", "import train; print(train.__file__)"], cwd=t,
                               capture_output=True, text=True, check=True).stdout.strip()
             for k, t in trees.items()}
    checks = []

    def check(what, diffs, **extra):
        # A figure added since `before` (a new key) does not make the shared figures unequal.
        changed = [d for d in diffs if not d.startswith("added ")]
        checks.append({"what": what, "equal": not changed, "differences": diffs[:20], **extra})
        diffs = changed
        log(f"{'equal' if not diffs else 'DIFFERENT'}: {what}" + ("" if not diffs else f" ({diffs[0]})"))

    for act in ("tanhexp", "relu"):
        runs = {k: work / f"{k}-run-{act}" for k in trees}
        for k, t in trees.items():
            sh(t, "train", "--act", act, "--data", str(DATA), *TRAIN, "--out", str(runs[k]), log=log)
        check(f"train {act}: history (losses, accuracies)",
              differences(figures(history(runs["before"])), figures(history(runs["after"]))))
        check(f"train {act}: metrics.json", differences(*(figures(json.loads((runs[k] / "metrics.json").read_text()))
                                                          for k in trees)))
        same, diff = weights_equal(runs["before"] / "model.keras", runs["after"] / "model.keras")
        check(f"train {act}: weights", [] if same else [f"max |dw| {diff:.3g}"], max_abs_weight_difference=diff)

        exported = {k: work / f"{k}-export-{act}" for k in trees}
        for k, t in trees.items():
            shutil.copytree(runs["after"], exported[k], ignore=shutil.ignore_patterns("export"))
            for fmt in ("tflite", "onnx"):
                sh(t, "export", "--run", str(exported[k]), "--format", fmt, log=log)
        arts = {k: {(a["format"], a["mode"]): a for a in
                    json.loads((exported[k] / "export" / "manifest.json").read_text())["artifacts"]} for k in trees}
        for key in sorted(set(arts["before"]) | set(arts["after"])):
            a, b = arts["before"].get(key, {}), arts["after"].get(key, {})
            check(f"export {act} {key[0]} {key[1]}: sha256 and parity",
                  differences({"sha256": a.get("sha256"), **figures(a.get("parity"), "parity.")},
                              {"sha256": b.get("sha256"), **figures(b.get("parity"), "parity.")}),
                  parity=b.get("parity"))
        bench = {k: work / f"{k}-bench-{act}.json" for k in trees}
        for k, t in trees.items():
            sh(t, "runtime.bench", "--bundle", str(exported[k] / "export"), "--runs", "20", "--json", str(bench[k]),
               log=log)
        rows = {k: {r["file"]: {f: r.get(f) for f in r if "accuracy" in f or "agreement" in f}
                    for r in json.loads(bench[k].read_text())["rows"]} for k in trees}
        check(f"bench {act}: accuracy and agreement of every row", differences(*(figures(rows[k]) for k in trees)))

    studies = {k: work / f"{k}-study" for k in trees}
    for k, t in trees.items():
        sh(t, "study", *STUDY, *STUDY_OPTIONS[k], "--data", str(DATA), "--out", str(studies[k]), log=log)
    cells = {k: json.loads((studies[k] / "study.json").read_text())["cells"] for k in trees}
    # The cells name their run folders, which differ by the tree's prefix only.
    same_place = {k: json.loads(json.dumps(cells[k]).replace(f"{k}-study", "TREE-study")) for k in trees}
    check("study --quick: every cell's figures", differences(*(figures(same_place[k]) for k in trees)))
    return {"before": commits["before"], "after": commits["after"], "train_package": where,
            "train_options": TRAIN, "study_options": {k: STUDY + v for k, v in STUDY_OPTIONS.items()},
            "checks": checks, "all_equal": all(c["equal"] for c in checks)}


def main(argv=None) -> int:
    p = Parser(prog="python -m experiments.redesign_parity", description=__doc__.split("\n\n")[0])
    p.add_argument("--before", default="0ac8243", help="the earlier commit")
    p.add_argument("--after", default="HEAD", help="the later commit")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the record here")
    p.add_argument("--keep", type=Path, default=None, metavar="DIR", help="work in DIR (kept) instead of a temp folder")
    a = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    work = a.keep or Path(tempfile.mkdtemp(prefix="edgecnn-parity-"))
    try:
        from runtime.provenance import provenance
        t = time.time()
        rec = {**compare(a.before, a.after, work), "minutes": round((time.time() - t) / 60, 1),
               "provenance": provenance()}
    except (RuntimeError, subprocess.CalledProcessError) as e:
        return fail(e, 1)
    finally:
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    if a.json:
        write_json(a.json, rec)
    n = len(rec["checks"])
    print(f"{sum(c['equal'] for c in rec['checks'])} of {n} checks equal ({rec['before'][:7]} vs {rec['after'][:7]})")
    return 0 if rec["all_equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
