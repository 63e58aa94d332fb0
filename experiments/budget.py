"""python -m experiments.budget: finished runs against a quality target within a training-time budget.

MLPerf Tiny's target for ResNet-8 is two numbers at once: >= 85 % test accuracy for the
int8 TFLite model, trained in <= 60 minutes here. This reads each run's own files — metrics.json
(training wall time, float test accuracy) and export/manifest.json (the int8 TFLite model's test
accuracy, measured at export) — and prints one row per run and, with --plot, accuracy against
training minutes with the target's corner drawn in: the runs that meet it sit top left.

It only reads: it never trains, exports or opens the test split itself.
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from runtime.fileio import write_json
from runtime.cli import Parser

FORMAT, MODE = "tflite", "int8"  # the model the MLPerf Tiny target is about


class NotARun(ValueError):
    """The folder lacks a finished run's metrics.json or config.json."""


def _read_json(path: Path) -> dict:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise NotARun(f"{path}: {e.__class__.__name__}: {e}") from None
    if not isinstance(d, dict):
        raise NotARun(f"{path}: not a JSON object")
    return d


def row(run: Path, target: float, minutes: float) -> dict:
    m, c = _read_json(run / "metrics.json"), _read_json(run / "config.json")
    int8 = None
    manifest = run / "export" / "manifest.json"
    if manifest.is_file():
        arts = _read_json(manifest).get("artifacts", [])
        int8 = next((a["parity"]["test_accuracy"] for a in arts
                     if a.get("format") == FORMAT and a.get("mode") == MODE and "parity" in a), None)
    mins = m["wall_time_s"] / 60
    return {
        "run": run.name, "act": m["act"], "arch": m["arch"], "recipe": c.get("recipe"), "seed": m["seed"],
        "epochs": m["epochs"], "val_size": c.get("val_size"), "minutes": round(mins, 2),
        "float_test": m["test_accuracy"], "int8_test": int8,
        "meets": bool(int8 is not None and int8 >= target and mins <= minutes),
        "trained_on": m.get("trained_on"), "git_commit": m.get("git_commit"), "versions": m.get("versions"),
    }


def markdown(rows: list[dict], target: float, minutes: float) -> str:
    pct = lambda x: "not exported" if x is None else f"{100 * x:.2f} %"  # noqa: E731
    out = [f"Target: int8 TFLite test accuracy >= {100 * target:g} % and training <= {minutes:g} min.", "",
           "| run | act | recipe | epochs | trained on | minutes | float test | int8 TFLite test | meets |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        images = "train" if r["val_size"] else "train + val"
        out.append(f"| {r['run']} | {r['act']} | {r['recipe']} | {r['epochs']} | {images} | {r['minutes']:.1f} | "
                   f"{pct(r['float_test'])} | {pct(r['int8_test'])} | {'yes' if r['meets'] else 'no'} |")
    return "\n".join(out) + "\n"


def plot(rows: list[dict], target: float, minutes: float, path: Path, title: str = "") -> None:
    from study.report import COLORS, _pyplot, _save

    plt = _pyplot()
    # Each point is labelled with its epochs, and with its recipe where it is not the usual one.
    usual = Counter(r["recipe"] for r in rows).most_common(1)[0][0]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        color = COLORS.get(r["act"], "gray")
        # Float and int8 of one run joined by a line: the length is what int8 costs.
        ys = [100 * r["float_test"]] + ([100 * r["int8_test"]] if r["int8_test"] is not None else [])
        ax.plot([r["minutes"]] * len(ys), ys, color=color, lw=1, alpha=0.6)
        ax.scatter(r["minutes"], 100 * r["float_test"], facecolors="none", edgecolors=color, s=40)
        if r["int8_test"] is not None:
            ax.scatter(r["minutes"], 100 * r["int8_test"], color=color, s=40,
                       marker="o" if r["val_size"] else "s")
        label = f"{r['epochs']} ep" + ("" if r["recipe"] == usual else f", {r['recipe']}")
        ax.annotate(label, (r["minutes"], min(ys)), textcoords="offset points", fontsize=7,
                    # ReLU's labels to the left, TanhExp's to the right: runs of equal time do not collide
                    xytext=(-6, -10) if r["act"] == "relu" else (6, -10), ha="right" if r["act"] == "relu" else "left")
    ax.axhline(100 * target, color="k", ls="--", lw=0.8)
    ax.axvline(minutes, color="k", ls="--", lw=0.8)
    hi = ax.get_ylim()[1]
    ax.fill_between([0, minutes], 100 * target, max(hi, 100 * target + 0.5), color="tab:green", alpha=0.08, lw=0)
    ax.set_xlim(left=0)
    handles = [plt.Line2D([], [], color=COLORS[a], marker="o", ls="", label=a) for a in ("tanhexp", "relu")]
    handles += [plt.Line2D([], [], color="gray", marker="o", ls="", mfc="none", label="float (Keras)"),
                plt.Line2D([], [], color="gray", marker="o", ls="", label="int8 TFLite"),
                plt.Line2D([], [], color="gray", marker="s", ls="", label="int8, trained on train + val")]
    ax.legend(handles=handles, fontsize=8, loc="lower left")
    ax.set_xlabel("training wall time (min, this machine)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title or f"target: int8 >= {100 * target:g} % within {minutes:g} min (shaded)")
    ax.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)


def main(argv=None) -> int:
    p = Parser(prog="python -m experiments.budget", description=__doc__.split("\n\n")[0],
                                epilog="Example: python -m experiments.budget runs/resnet8-strong-sgd-*-s0 "
                                       "--plot docs/results/resnet8-budget.png")
    p.add_argument("runs", nargs="+", metavar="RUN", help="finished run folders (export them first for the int8 column)")
    t = p.add_argument_group("target")
    t.add_argument("--target", type=float, default=0.85, help="int8 TFLite test accuracy to reach, as a fraction (0.85)")
    t.add_argument("--minutes", type=float, default=60.0, help="training wall-time budget in minutes (60)")
    o = p.add_argument_group("output")
    o.add_argument("--json", default=None, metavar="PATH", help="also write the rows as JSON")
    o.add_argument("--plot", default=None, metavar="PATH", help="also draw accuracy vs training minutes (PNG)")
    a = p.parse_args(argv)
    if not (0 < a.target <= 1) or a.minutes <= 0:
        print(f"error: --target must be in (0, 1] and --minutes > 0, got {a.target} and {a.minutes}", file=sys.stderr)
        return 2
    try:
        rows = sorted((row(Path(r), a.target, a.minutes) for r in a.runs), key=lambda r: r["minutes"])
    except (NotARun, KeyError) as e:
        print(f"error: not a finished run: {e}", file=sys.stderr)
        return 2
    print(markdown(rows, a.target, a.minutes), end="")
    if a.json:
        write_json(a.json, {"target": a.target, "minutes": a.minutes, "format": FORMAT, "mode": MODE, "rows": rows})
    if a.plot:
        plot(rows, a.target, a.minutes, Path(a.plot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
