"""python -m study.sweep RUN... --baseline RUN: hyper-parameter variants against a baseline, on validation.

A recipe change (batch size, learning rate, label smoothing, epochs...) is kept or dropped on the
validation split, and under a time budget it has to win at equal training time, not just at equal
epochs. This reads each run's config.json and history.csv (never metrics.json, which holds the test
accuracy: nothing here can be tuned on the test split) and prints one row per run — what differs
from the baseline's config, validation accuracy (mean of the last 5 epochs, which shrugs off one
lucky epoch), its change against the baseline, median epoch time and total minutes as ratios to the
baseline's — and, with --plot, validation accuracy against training minutes, so an equal-time
comparison can be read off one figure.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

from runtime.fileio import write_json

# Settings that do not change what is trained (train/config.py RESUME_FREE, and the run folder).
IGNORED = ("verbose", "out", "data", "data_source", "recipe_settings")


class NotAValidationRun(ValueError):
    """The folder has no config.json / history.csv, or no validation split to compare on."""


def _read(run: Path) -> tuple[dict, list[dict]]:
    try:
        cfg = json.loads((run / "config.json").read_text())
        with open(run / "history.csv", newline="") as f:
            hist = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    except (OSError, ValueError) as e:
        raise NotAValidationRun(f"{run}: {e.__class__.__name__}: {e}") from None
    if not isinstance(cfg, dict):
        raise NotAValidationRun(f"{run}/config.json: not a JSON object")
    if not hist or "val_accuracy" not in hist[0]:
        raise NotAValidationRun(f"{run}: no validation accuracy in history.csv (trained with --val-size 0?)")
    return cfg, hist


def _settings(cfg: dict) -> dict:
    """The config as the trainer resolves it (a default --lr is the recipe's), minus what changes nothing."""
    from train.config import TrainConfig
    try:
        resolved = TrainConfig(**{k: v for k, v in cfg.items() if k in TrainConfig.__dataclass_fields__}).resolved()
    except (TypeError, KeyError):
        resolved = dict(cfg)
    return {k: v for k, v in resolved.items() if k not in IGNORED}


def _mean_last(hist: list[dict], key: str, n: int = 5) -> float:
    vals = [r[key] for r in hist[-n:]]
    return sum(vals) / len(vals)


def row(run: Path, base_settings: dict | None = None) -> dict:
    cfg, hist = _read(run)
    settings = _settings(cfg)
    diff = {} if base_settings is None else {k: v for k, v in settings.items() if base_settings.get(k) != v}
    vals = [r["val_accuracy"] for r in hist]
    secs = [r["seconds"] for r in hist if "seconds" in r]
    return {
        "run": run.name, "changes": diff, "epochs": len(hist), "planned_epochs": cfg.get("epochs", len(hist)),
        "val_last5": _mean_last(hist, "val_accuracy"), "val_best": max(vals), "val_best_epoch": vals.index(max(vals)) + 1,
        "train_last5": _mean_last(hist, "accuracy") if "accuracy" in hist[0] else None,
        "median_epoch_s": statistics.median(secs) if secs else None, "minutes": sum(secs) / 60 if secs else None,
        "val_split": (cfg.get("val_size"), cfg.get("seed")),
        "curve": [[round(sum(secs[:i + 1]) / 60, 3), v] for i, v in enumerate(vals)] if secs else [],
    }


def sweep(runs: list[Path], baseline: Path) -> list[dict]:
    base_cfg, _ = _read(baseline)
    base = row(baseline)
    rows = [base] + [row(r, _settings(base_cfg)) for r in runs if r.resolve() != baseline.resolve()]
    for r in rows:
        if r["val_split"] != base["val_split"]:
            raise NotAValidationRun(f"{r['run']}: validation split (val_size, seed) {r['val_split']} differs from "
                                    f"the baseline's {base['val_split']}: not comparable")
        r["delta_pt"] = round(100 * (r["val_last5"] - base["val_last5"]), 2)
        # Minutes compare with the same number of epochs in mind: a run still going is scaled to its plan.
        r["epoch_time_ratio"] = (r["median_epoch_s"] / base["median_epoch_s"]
                                 if r["median_epoch_s"] and base["median_epoch_s"] else None)
        r["planned_minutes"] = (r["median_epoch_s"] * r["planned_epochs"] / 60 if r["median_epoch_s"] else None)
        r["time_ratio"] = (r["planned_minutes"] / base["planned_minutes"]
                           if r["planned_minutes"] and base["planned_minutes"] else None)
    return rows


def _changes(d: dict) -> str:
    return ", ".join(f"{k.replace('_', '-')} {v}" for k, v in d.items()) or "– (baseline)"


def markdown(rows: list[dict]) -> str:
    fmt = lambda x, f: "–" if x is None else format(x, f)  # noqa: E731
    out = ["Validation accuracy (mean of the last 5 epochs) against the baseline, first row; "
           "time at the planned epochs from the median epoch, as a ratio to the baseline's.", "",
           "| run | changes | epochs | val last 5 | vs baseline | best (epoch) | train last 5 | median epoch | "
           "time (planned) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ep = str(r["epochs"]) if r["epochs"] >= r["planned_epochs"] else f"{r['epochs']} of {r['planned_epochs']}"
        train = "–" if r["train_last5"] is None else f"{100 * r['train_last5']:.2f} %"
        out.append(f"| {r['run']} | {_changes(r['changes'])} | {ep} | {100 * r['val_last5']:.2f} % | "
                   f"{r['delta_pt']:+.2f} pt | {100 * r['val_best']:.2f} % ({r['val_best_epoch']}) | {train} | "
                   f"{fmt(r['median_epoch_s'], '.1f')} s ({fmt(r['epoch_time_ratio'], '.2f')}x) | "
                   f"{fmt(r['planned_minutes'], '.1f')} min ({fmt(r['time_ratio'], '.2f')}x) |")
    return "\n".join(out) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    from study.report import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    top = max(r["val_best"] for r in rows)
    for r in rows:
        if r["curve"]:
            m, v = zip(*r["curve"])
            ax.plot(m, [100 * x for x in v], lw=1.6 if r is rows[0] else 1.0,
                    label=f"{r['run']}: {_changes(r['changes'])}")
    ax.set_ylim(100 * top - 6, 100 * top + 0.5)  # the end of the race, where variants differ
    ax.set_xlabel("training minutes (this machine)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("variants against the baseline (thick) at equal training time")
    ax.grid(alpha=0.3)
    # Below the axes: inside, it would hide the curves' ends, the part that matters.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.14))
    _save(fig, path)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m study.sweep", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("runs", nargs="*", type=Path, metavar="RUN", help="run folders of the variants")
    p.add_argument("--baseline", type=Path, required=True, help="the run the variants are compared with")
    o = p.add_argument_group("output")
    o.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the rows as JSON")
    o.add_argument("--plot", type=Path, default=None, metavar="PATH", help="validation accuracy vs minutes (.png)")
    a = p.parse_args(argv)
    try:
        rows = sweep(a.runs, a.baseline)
        print(markdown(rows), end="")
        if a.json:
            from runtime.provenance import provenance
            write_json(a.json, {"baseline": str(a.baseline), "rows": rows, "provenance": provenance()})
        if a.plot:
            plot(rows, a.plot)
    except (NotAValidationRun, OSError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
