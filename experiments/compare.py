"""python -m experiments.compare: two families of runs, paired by seed, on the same metric.

    python -m experiments.compare --a 'runs/seed-bf16-{act}-s{seed}' --b 'runs/seed-{act}-s{seed}' \
        --acts tanhexp,relu --seeds 0,1,2

answers "does B's way of training give A's results?" (here: bfloat16 vs float32) with the same
paired t-test the study uses (study/stats.py): per activation, the per-seed differences A - B,
their mean with a 95 % t-interval, and whether that interval excludes 0. Reads each run's
metrics.json (test accuracy) and history.csv (best validation accuracy); trains
nothing. A run missing from either side drops that seed, and the table says how many remain.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from runtime.fileio import write_json
from runtime.provenance import provenance
from study.stats import paired
from runtime.cli import Parser

# Accuracy only: wall times of separate runs on a shared machine are not comparable (speed is
# experiments.bench_speed's job, as a ratio within one process).
METRICS = ("test_accuracy", "best_val_accuracy")


def read_run(run: Path) -> dict | None:
    """The run's figures, or None when it is not finished (no metrics.json)."""
    try:
        m = json.loads((run / "metrics.json").read_text())
        with open(run / "history.csv", newline="") as f:
            vals = [float(r["val_accuracy"]) for r in csv.DictReader(f)]
    except (OSError, ValueError, KeyError):
        return None
    return {"test_accuracy": m.get("test_accuracy"), "best_val_accuracy": max(vals) if vals else None,
            "precision": m.get("precision", "float32")}


def compare(a: str, b: str, acts: list[str], seeds: list[int]) -> list[dict]:
    rows = []
    for act in acts:
        runs = {side: {s: read_run(Path(pat.format(act=act, seed=s))) for s in seeds} for side, pat in (("a", a), ("b", b))}
        for metric in METRICS:
            va = {s: r[metric] for s, r in runs["a"].items() if r and r.get(metric) is not None}
            vb = {s: r[metric] for s, r in runs["b"].items() if r and r.get(metric) is not None}
            shared = sorted(set(va) & set(vb))
            if not shared:
                continue
            va, vb = {s: va[s] for s in shared}, {s: vb[s] for s in shared}
            p = paired(va, vb)
            rows.append({"act": act, "metric": metric, "a": va, "b": vb, **p.to_dict(), "verdict": p.verdict()})
    return rows


def markdown(rows: list[dict], a: str, b: str) -> str:
    out = [f"A = `{a}`, B = `{b}`; paired by seed (A − B, in accuracy points):", "",
           "| act | metric | seeds | A per seed | B per seed | mean A − B | 95 % interval | verdict |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def fmt(v):
            return f"{100 * v:.2f}"
        ci = "–" if r["ci_low"] is None else f"{fmt(r['ci_low'])} … {fmt(r['ci_high'])}"
        out.append(f"| {r['act']} | {r['metric']} | {r['n']} | {', '.join(fmt(v) for v in r['a'].values())} | "
                   f"{', '.join(fmt(v) for v in r['b'].values())} | {fmt(r['mean_diff'])} | {ci} | {r['verdict']} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    p = Parser(prog="python -m experiments.compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("the two run families (folder patterns with {act} and {seed})")
    g.add_argument("--a", required=True, metavar="PATTERN")
    g.add_argument("--b", required=True, metavar="PATTERN")
    c = p.add_argument_group("cells")
    c.add_argument("--acts", default="tanhexp,relu", metavar="A[,A]")
    c.add_argument("--seeds", default="0,1,2", metavar="S[,S]")
    o = p.add_argument_group("output")
    o.add_argument("--json", default=None, metavar="FILE", help="also write the rows (with provenance) here")
    args = p.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        for pat in (args.a, args.b):
            pat.format(act="x", seed=0)
    except (ValueError, KeyError, IndexError) as e:
        print(f"error: --seeds must be integers and patterns may use only {{act}} and {{seed}} ({e})", file=sys.stderr)
        return 2
    acts = [a for a in args.acts.split(",") if a.strip()]
    rows = compare(args.a, args.b, acts, seeds)
    if not rows:
        print(f"error: no seed has a finished run on both sides ({args.a} vs {args.b})", file=sys.stderr)
        return 1
    print(markdown(rows, args.a, args.b), end="")
    if args.json:
        try:
            write_json(args.json, {"a": args.a, "b": args.b, "rows": rows, **provenance()})
        except OSError as e:
            print(f"error: cannot write --json {args.json}: {e.strerror or e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
