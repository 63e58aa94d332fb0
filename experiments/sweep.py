"""python -m experiments.sweep RUN... --baseline RUN: hyper-parameter variants against a baseline, on validation.

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

import dataclasses
import itertools
import json
import statistics
import sys
from pathlib import Path

from runtime.fileio import check_writable, write_json
from runtime.provenance import MACHINE_KEYS
from experiments.ablation import val_summary
from runtime.cli import Parser


class NotAValidationRun(ValueError):
    """The folder has no readable config.json / history.csv, or no validation split to compare on."""


def _files(run: Path) -> tuple[Path, Path]:
    """A run folder's config.json and history.csv, or the copies of them in the results record
    (RECORD.config.json and RECORD.history.csv, e.g. docs/results/train-NAME): run folders are not
    committed, so a committed sweep reruns from a fresh clone only on the record's copies."""
    if run.is_dir():
        return run / "config.json", run / "history.csv"
    return run.with_name(run.name + ".config.json"), run.with_name(run.name + ".history.csv")


def _read(run: Path) -> tuple[dict, list[dict]]:
    from experiments.ablation import register
    from study.collect import _history
    from train.config import TrainConfig
    register()  # runs of the ablations and rejected variants are read like any other
    config, history = _files(run)
    try:
        raw = json.loads(config.read_text())
        cfg = TrainConfig.from_dict(raw)
        hist = _history(history)
        settings = _settings(cfg)
        planned = int(cfg.epochs)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise NotAValidationRun(f"{run}: {e.__class__.__name__}: {e}") from None
    if not hist or "val_accuracy" not in hist[0]:
        raise NotAValidationRun(f"{run}: no validation accuracy in history.csv (trained with --val-size 0?)")
    return {"settings": settings, "planned": planned,
            # the same validation images: the same split (size, seed) of the same data file
            "val_split": [cfg.val_size, cfg.seed, (raw.get("data_source") or {}).get("sha256")],
            # the machine it trained on (older configs lack it): speeds compare on one only
            "machine": _machine(raw.get("device"))}, hist


def _machine(device) -> list | None:
    return [device.get(k) for k in MACHINE_KEYS] if isinstance(device, dict) else None


def _elsewhere(r: dict) -> str | None:
    """Why a row's times are not set against the baseline's, or None when they are."""
    return None if r["same_machine"] else "other machine" if r["machine"] else "machine not recorded"


def _settings(cfg) -> dict:
    """What was trained: the recipe as resolved (its registry values with this run's --lr,
    --weight-decay, --label-smoothing), and the config's other fields, less what changes nothing."""
    from train.recipes import RECIPES, recipe_of
    if cfg.recipe not in RECIPES:
        raise KeyError(f"unknown recipe {cfg.recipe!r}")
    recipe = dataclasses.asdict(recipe_of(cfg))
    rest = {k: v for k, v in cfg.to_dict().items()
            if k not in recipe and k not in cfg.RESUME_FREE and k != "data"}  # the data: by sha256, below
    return {**rest, **recipe}


def row(run: Path, base: dict | None = None, read: tuple[dict, list[dict]] | None = None) -> dict:
    """One run's figures; `base` is the baseline's `_read` info (None: this is the baseline), `read`
    this run's own if the caller has it already."""
    info, hist = read or _read(run)
    diff = {} if base is None else {k: v for k, v in info["settings"].items() if base["settings"].get(k) != v}
    vals = [r["val_accuracy"] for r in hist]
    secs = [r["seconds"] for r in hist if "seconds" in r]
    return {
        "run": run.name, "changes": diff, "epochs": len(hist), "planned_epochs": info["planned"],
        "finished": len(hist) >= info["planned"], **{f"val_{k}": v for k, v in val_summary(vals).items()},
        "train_last5": sum(r["accuracy"] for r in hist[-5:]) / len(hist[-5:]) if "accuracy" in hist[0] else None,
        "median_epoch_s": statistics.median(secs) if secs else None, "minutes": sum(secs) / 60 if secs else None,
        "val_split": info["val_split"], "machine": info["machine"],
        "curve": [[round(t / 60, 3), v] for t, v in zip(itertools.accumulate(secs), vals)] if len(secs) == len(vals) else [],
    }


def sweep(runs: list[Path], baseline: Path) -> list[dict]:
    base_read = _read(baseline)
    base_info = base_read[0]
    base = row(baseline, read=base_read)
    seen = {baseline.resolve()}
    rows = [base]
    for r in runs:
        if r.resolve() not in seen:  # the baseline or a run named twice: one row
            seen.add(r.resolve())
            rows.append(row(r, base_info))
    for r in rows:
        if r["val_split"] != base["val_split"]:
            raise NotAValidationRun(f"{r['run']}: validation split (size, seed, data sha256) {r['val_split']} differs "
                                    f"from the baseline's {base['val_split']}: not comparable")
        # A run still going is not compared yet: its last 5 epochs are not its end.
        r["delta_pt"] = round(100 * (r["val_last5_mean"] - base["val_last5_mean"]), 2) if r["finished"] else None
        r["planned_minutes"] = r["median_epoch_s"] * r["planned_epochs"] / 60 if r["median_epoch_s"] else None
        # Times on two machines (or on one not recorded) are no ratio of speeds: none is given.
        r["same_machine"] = r["machine"] is not None and r["machine"] == base["machine"]
        r["epoch_time_ratio"] = _ratio(r["median_epoch_s"], base["median_epoch_s"]) if r["same_machine"] else None
        r["time_ratio"] = _ratio(r["planned_minutes"], base["planned_minutes"]) if r["same_machine"] else None
    return rows


def _ratio(a, b):
    return a / b if a and b else None


def _changes(d: dict) -> str:
    return ", ".join(f"{k.replace('_', '-')} {v}" for k, v in d.items()) or "– (baseline)"


def markdown(rows: list[dict]) -> str:
    fmt = lambda x, f: "–" if x is None else format(x, f)  # noqa: E731
    out = ["Validation accuracy (mean of the last 5 epochs) against the baseline, first row; "
           "time at the planned epochs from the median epoch, as a ratio to the baseline's.", "",
           "| run | changes | epochs | val last 5 | vs baseline | best (epoch) | train last 5 | median epoch | "
           "time (planned) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ep = str(r["epochs"]) if r["finished"] else f"{r['epochs']} of {r['planned_epochs']} (running)"
        ratio = lambda x: _elsewhere(r) or f"{fmt(x, '.2f')}x"  # noqa: E731
        delta = "– (running)" if r["delta_pt"] is None else f"{r['delta_pt']:+.2f} pt"
        train = "–" if r["train_last5"] is None else f"{100 * r['train_last5']:.2f} %"
        out.append(f"| {r['run']} | {_changes(r['changes'])} | {ep} | {100 * r['val_last5_mean']:.2f} % | {delta} | "
                   f"{100 * r['val_best']:.2f} % ({r['val_best_epoch']}) | {train} | "
                   f"{fmt(r['median_epoch_s'], '.1f')} s ({ratio(r['epoch_time_ratio'])}) | "
                   f"{fmt(r['planned_minutes'], '.1f')} min ({ratio(r['time_ratio'])}) |")
    return "\n".join(out) + "\n"


def plot(rows: list[dict]):
    """The figure (saved by the caller once everything else has succeeded)."""
    from study.report import _pyplot

    plt = _pyplot()
    if not all(r["curve"] for r in rows):
        missing = next(r["run"] for r in rows if not r["curve"])
        raise NotAValidationRun(f"{missing}: history.csv has no per-epoch seconds to plot against")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    top = max(r["val_best"] for r in rows)
    for r in rows:
        m, v = zip(*r["curve"])
        where = f" [{_elsewhere(r)}]" if _elsewhere(r) else ""
        ax.plot(m, [100 * x for x in v], lw=1.6 if r is rows[0] else 1.0,
                label=f"{r['run']}: {_changes(r['changes'])}{where}")
    ax.set_ylim(100 * top - 6, 100 * top + 0.5)  # the end of the race, where variants differ
    ax.set_xlabel("training minutes (on the machine each run trained on)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("variants against the baseline (thick) at equal training time")
    ax.grid(alpha=0.3)
    # Below the axes: inside, it would hide the curves' ends, the part that matters.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.14))
    return fig


def guarded(work, *outputs: Path | None) -> int:
    """Run a CLI's work: its outputs' folders are checked writable before anything is written (all
    outputs or none), and a bad run folder or path is a one-line error with exit code 2."""
    try:
        for path in outputs:
            if path:
                check_writable(path)
        work()
    except (NotAValidationRun, OSError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    return 0


def emit(table: str, record: dict, json_path: Path | None, fig, plot_path: Path | None) -> None:
    """Print the table, then write the JSON (the record and its provenance) and the figure: the
    outputs' folders were checked writable first, and the figure was drawn before anything printed."""
    print(table, end="")
    if json_path:
        from runtime.provenance import provenance
        write_json(json_path, {**record, "provenance": provenance()})
    if fig is not None:
        from study.report import _pyplot, _save
        _save(fig, plot_path)
        _pyplot().close(fig)


def main(argv=None) -> int:
    p = Parser(prog="python -m experiments.sweep", description=__doc__.split("\n\n")[0],
                                epilog="Example: python -m experiments.sweep runs/resnet8-strong-sgd-b250-relu-s0 "
                                       "--baseline runs/resnet8-strong-sgd-relu-s0 --plot sweep.png")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                   help="run folders of the variants, or results records: PATH for PATH.config.json and "
                        "PATH.history.csv (e.g. docs/results/train-NAME)")
    p.add_argument("--baseline", type=Path, required=True,
                   help="the run folder (or results record) the variants are compared with")
    o = p.add_argument_group("output")
    o.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the rows as JSON")
    o.add_argument("--plot", type=Path, default=None, metavar="PATH",
                   help="also draw validation accuracy against training minutes (PNG)")
    a = p.parse_args(argv)

    def work():
        rows = sweep(a.runs, a.baseline)
        emit(markdown(rows), {"baseline": str(a.baseline), "rows": rows}, a.json,
             plot(rows) if a.plot else None, a.plot)
    return guarded(work, a.json, a.plot)


if __name__ == "__main__":
    sys.exit(main())
