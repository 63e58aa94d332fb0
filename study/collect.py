"""Gather every cell's run, manifest and bench into one document, and the statistics over it.

Accuracy here is always the test split (the final report); validation only appears in the
convergence figures. "keras" is the trained float model (model.evaluate in train), every other
model key is FORMAT/MODE from the export manifest (parity on the full test split).
"""
from __future__ import annotations

import csv
import json
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

from runtime.provenance import provenance
from study import stats
from study.convergence import convergence

SCHEMA = "edge-study/1"
INT8_MODES = ("int8", "qat")
MAX_INT8_DROP_PT = 0.5


def _history(run: Path) -> list[dict]:
    """A run folder's history.csv (or the file itself: a results record's copy) as float rows."""
    with open(run if run.suffix == ".csv" else run / "history.csv", newline="") as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]


def _bench_rows(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {(r["format"], r["mode"]): r for r in doc.get("rows", []) if not r.get("error")}


def bn_leftovers(ops) -> list[str]:
    """Ops that are batch norm by name (ONNX BatchNormalization, a TF FusedBatchNorm that
    slipped through). An unfolded BN in TFLite shows up as extra MUL/ADD instead, which the
    op-count comparison with the BN-free twin (same arch and activation, seed recipe) catches."""
    return sorted({o for o in ops if "batchnorm" in o.lower()})


def cell_record(cell, run: Path, bench: Path, thresholds) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    rows = _history(run)
    timed = _bench_rows(bench)
    keras_acc = metrics["test_accuracy"]
    artifacts = []
    for a in manifest["artifacts"]:
        b = timed.get((a["format"], a["mode"]), {})
        acc = a["parity"]["test_accuracy"]
        artifacts.append({
            "model": f"{a['format']}/{a['mode']}", "format": a["format"], "mode": a["mode"],
            "size_bytes": a["size_bytes"], "test_accuracy": acc, "agreement": a["parity"]["agreement"],
            "drop_pt": round(100 * (keras_acc - acc), 3), "op_counts": a.get("op_counts", {}),
            "bn_leftovers": bn_leftovers(a.get("ops", [])),
            "latency_ms_p50": b.get("latency_ms_p50"), "bench_accuracy": b.get("accuracy"),
        })
    return {
        "arch": cell.arch, "recipe": cell.recipe, "act": cell.act, "seed": cell.seed, "run": str(run),
        "train": {k: metrics.get(k) for k in ("test_accuracy", "best_val_accuracy", "best_val_epoch", "epochs",
                                              "wall_time_s", "images_per_s", "params", "trained_on")},
        # Runs from before train recorded it were all float32.
        "precision": metrics.get("precision", "float32"),
        "history": [{"epoch": int(r["epoch"]), "val_accuracy": r.get("val_accuracy"),
                     "accuracy": r.get("accuracy"), "seconds": r.get("seconds")} for r in rows],
        "convergence": convergence(rows, thresholds),
        "artifacts": artifacts,
    }


def _accuracy_maps(records) -> dict:
    """{(arch, recipe, model): {act: {seed: accuracy}}}"""
    out = defaultdict(lambda: defaultdict(dict))
    for r in records:
        out[(r["arch"], r["recipe"], "keras")][r["act"]][r["seed"]] = r["train"]["test_accuracy"]
        for a in r["artifacts"]:
            out[(r["arch"], r["recipe"], a["model"])][r["act"]][r["seed"]] = a["test_accuracy"]
    return out


def summarize(records, acts) -> dict:
    maps = _accuracy_maps(records)
    accuracy, paired = [], []
    for (arch, recipe, model), by_act in maps.items():
        for act, vals in by_act.items():
            m, half = stats.mean_ci(vals.values())
            accuracy.append({"arch": arch, "recipe": recipe, "model": model, "act": act, "n": len(vals),
                             "mean": m, "std": stats.std(vals.values()), "ci95_half": half,
                             "values": {str(k): v for k, v in sorted(vals.items())}})
        if len(acts) == 2 and all(a in by_act for a in acts):
            p = stats.paired(by_act[acts[0]], by_act[acts[1]])
            paired.append({"arch": arch, "recipe": recipe, "model": model, "a": acts[0], "b": acts[1],
                           **p.to_dict(), "verdict": p.verdict()})

    conv = []
    groups = defaultdict(list)
    for r in records:
        groups[(r["arch"], r["recipe"], r["act"])].append(r)
    for (arch, recipe, act), rs in groups.items():
        for t in rs[0]["convergence"]:
            hits = [r["convergence"][t] for r in rs if r["convergence"][t]]
            conv.append({"arch": arch, "recipe": recipe, "act": act, "threshold": float(t),
                         "reached": len(hits), "runs": len(rs),
                         "epoch_mean": stats.mean(h["epoch"] for h in hits) if hits else None,
                         "seconds_mean": stats.mean(h["seconds"] for h in hits) if hits else None})

    drops = [{"cell": f"{r['arch']}-{r['recipe']}-{r['act']}-s{r['seed']}", "model": a["model"],
              "drop_pt": a["drop_pt"], "ok": a["drop_pt"] <= MAX_INT8_DROP_PT}
             for r in records for a in r["artifacts"] if a["mode"] in INT8_MODES]

    # BN folding: a BN model's exported op counts must equal its BN-free twin's (seed recipe,
    # same arch/act/model) where the study has that twin, and hold no batch-norm op at all.
    twins = {(r["arch"], r["act"], a["model"]): a["op_counts"] for r in records if r["recipe"] == "seed"
             and r["arch"] == "seed" for a in r["artifacts"]}
    bn = []
    for r in records:
        if r["recipe"] == "seed" and r["arch"] == "seed":
            continue  # no batch norm to fold
        for a in r["artifacts"]:
            twin = twins.get((r["arch"], r["act"], a["model"]))
            same = None if twin is None else twin == a["op_counts"]
            bn.append({"cell": f"{r['arch']}-{r['recipe']}-{r['act']}-s{r['seed']}", "model": a["model"],
                       "bn_ops": a["bn_leftovers"], "same_ops_as_bn_free_twin": same,
                       "ok": not a["bn_leftovers"] and same is not False})
    return {"accuracy": accuracy, "paired": paired, "convergence": conv, "int8_drop": drops, "bn_folding": bn}


def collect(cfg, items) -> dict:
    records = [cell_record(c, run, bench, cfg.thresholds) for c, run, bench in items]
    return {"schema": SCHEMA, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **provenance(), "config": cfg.to_dict(), "cells": records,
            "summary": summarize(records, list(cfg.acts))}
