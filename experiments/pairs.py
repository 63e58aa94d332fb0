"""python -m experiments.pairs --baseline RUN... --variant RUN...: one recipe change over seeds, paired, on validation.

One run per variant cannot settle a fraction of a point: two runs of one recipe ended 1 pt apart on
the 5,000-image validation split (docs/decisions.md). So each variant run is paired with the
baseline run of the same seed (`--seed` also draws the validation split, so a pair is judged on the
same images, and ideally trained on the same machine), the pair's difference of validation accuracy
(mean of the last 5 epochs) is taken, and the differences get a mean, a 95 % t-interval and a paired
t-test (study.stats.paired). What else differs within a pair is shown, never hidden. Like
experiments.sweep, this reads config.json and history.csv only: the test accuracy (metrics.json) is
never read, so nothing here can be tuned on the test split.
"""
from __future__ import annotations

import sys
from pathlib import Path

from study.stats import mean, paired, std
from experiments.sweep import NotAValidationRun, _read, emit, guarded, row
from runtime.cli import Parser


def _arm(runs: list[Path], name: str) -> dict[int, dict]:
    """{seed: the run's row and settings} for one arm; one run per seed."""
    out: dict[int, dict] = {}
    for run in runs:
        info, hist = _read(run)
        seed = info["settings"]["seed"]
        if seed in out:
            raise NotAValidationRun(f"{name}: two runs of seed {seed} ({out[seed]['row']['run']}, {run.name}): "
                                    "one per seed, or the pairing is ambiguous")
        out[seed] = {"row": row(run, read=(info, hist)), "settings": info["settings"]}
    return out


def compare(baseline: list[Path], variant: list[Path], level: float = 0.95) -> dict:
    """Pairs by seed, their differences (variant minus baseline, in points) and the paired statistics
    over the finished pairs; seeds in one arm only are listed as unpaired."""
    base, var = _arm(baseline, "--baseline"), _arm(variant, "--variant")
    pairs = []
    for seed in sorted(set(base) & set(var)):
        b, v = base[seed], var[seed]
        if b["row"]["val_split"] != v["row"]["val_split"]:
            raise NotAValidationRun(f"seed {seed}: {v['row']['run']} and {b['row']['run']} were validated on "
                                    f"different splits {v['row']['val_split']} / {b['row']['val_split']}")
        finished = b["row"]["finished"] and v["row"]["finished"]
        pairs.append({
            "seed": seed, "baseline": b["row"]["run"], "variant": v["row"]["run"],
            # what the variant trained differently from its own baseline, as [baseline's, variant's]
            "changes": {k: [b["settings"].get(k), x] for k, x in v["settings"].items()
                        if b["settings"].get(k) != x},
            "baseline_val_last5": b["row"]["val_last5_mean"], "variant_val_last5": v["row"]["val_last5_mean"],
            # a run still going has not reached its end: its pair waits
            "diff_pt": 100 * (v["row"]["val_last5_mean"] - b["row"]["val_last5_mean"]) if finished else None,
            "finished": finished,
            "same_machine": b["row"]["machine"] is not None and b["row"]["machine"] == v["row"]["machine"],
            "machine": v["row"]["machine"] if b["row"]["machine"] == v["row"]["machine"] else
            [b["row"]["machine"], v["row"]["machine"]],
        })
    done = [p for p in pairs if p["finished"]]
    stats = None
    if done:
        st = paired({p["seed"]: 100 * p["variant_val_last5"] for p in done},
                    {p["seed"]: 100 * p["baseline_val_last5"] for p in done}, level)
        stats = {**st.to_dict(), "verdict": st.verdict(), "level": level,
                 "baseline_mean": mean(100 * p["baseline_val_last5"] for p in done),
                 "baseline_std": std(100 * p["baseline_val_last5"] for p in done),
                 "variant_mean": mean(100 * p["variant_val_last5"] for p in done),
                 "variant_std": std(100 * p["variant_val_last5"] for p in done)}
    return {"pairs": pairs, "unpaired": {"baseline": sorted(set(base) - set(var)),
                                         "variant": sorted(set(var) - set(base))}, "stats": stats}


def _changes(d: dict) -> str:
    return ", ".join(f"{k.replace('_', '-')} {b} → {v}" for k, (b, v) in d.items()) or "–"


def markdown(res: dict) -> str:
    out = ["Validation accuracy, mean of the last 5 epochs; difference = variant minus baseline, same seed.", "",
           "| seed | baseline run | variant run | what differs | baseline | variant | difference | same machine |",
           "|---|---|---|---|---|---|---|---|"]
    for p in res["pairs"]:
        diff = "– (running)" if p["diff_pt"] is None else f"{p['diff_pt']:+.2f} pt"
        out.append(f"| {p['seed']} | {p['baseline']} | {p['variant']} | {_changes(p['changes'])} | "
                   f"{100 * p['baseline_val_last5']:.2f} % | {100 * p['variant_val_last5']:.2f} % | {diff} | "
                   f"{'yes' if p['same_machine'] else 'no'} |")
    s = res["stats"]
    out.append("")
    if s is None:
        out.append("No finished pair yet: nothing to compare.")
    else:
        ci = ("no interval from one pair" if s["ci_low"] is None else
              f"{100 * s['level']:.0f} % interval [{s['ci_low']:+.2f}, {s['ci_high']:+.2f}] pt, p = {s['p_value']:.3f}")
        sd = (lambda k: f" ± {s[k]:.2f}") if s["n"] > 1 else (lambda k: "")  # one run has no spread to show
        out.append(f"Over {s['n']} pair(s): baseline {s['baseline_mean']:.2f}{sd('baseline_std')} %, "
                   f"variant {s['variant_mean']:.2f}{sd('variant_std')} %" + (" (mean ± std)" if s["n"] > 1 else "")
                   + f"; difference {s['mean_diff']:+.2f} pt ({ci}): {s['verdict']}.")
    for arm, seeds in res["unpaired"].items():
        if seeds:
            out.append(f"Unpaired (no run of the other arm): {arm} seed(s) {', '.join(map(str, seeds))}.")
    return "\n".join(out) + "\n"


def plot(res: dict):
    """Each seed's two runs joined by a line: a slope that points the same way in every pair is what
    a real difference looks like."""
    from study.report import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4))
    for p in res["pairs"]:  # a pair still running would squash the axis with its early accuracy
        if p["finished"]:
            ax.plot([0, 1], [100 * p["baseline_val_last5"], 100 * p["variant_val_last5"]], "o-",
                    label=f"seed {p['seed']}" + ("" if p["same_machine"] else " (two machines)"))
    ax.set_xticks([0, 1], ["baseline", "variant"])
    ax.set_xlim(-0.3, 1.3)
    ax.set_ylabel("validation accuracy, last 5 epochs (%)")
    s = res["stats"]
    ax.set_title("paired by seed" if s is None else f"paired by seed: {s['mean_diff']:+.2f} pt, {s['verdict']}",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def main(argv=None) -> int:
    p = Parser(
        prog="python -m experiments.pairs", description=__doc__.split("\n\n")[0],
        epilog="Example: python -m experiments.pairs --baseline runs/resnet8-strong-sgd-relu-s{0,1,2} "
               "--variant runs/resnet8-strong-sgd-lr2-relu-s{0,1,2} --plot pairs.png")
    p.add_argument("--baseline", type=Path, nargs="+", required=True, metavar="RUN",
                   help="the baseline's run folders (or results records: PATH for PATH.config.json and "
                        "PATH.history.csv), one per seed")
    p.add_argument("--variant", type=Path, nargs="+", required=True, metavar="RUN",
                   help="the variant's run folders or results records, one per seed")
    p.add_argument("--level", type=float, default=0.95, help="confidence level of the interval")
    o = p.add_argument_group("output")
    o.add_argument("--json", type=Path, default=None, metavar="PATH",
                   help="also write the pairs and statistics as JSON")
    o.add_argument("--plot", type=Path, default=None, metavar="PATH", help="also draw each pair (PNG)")
    a = p.parse_args(argv)
    if not 0 < a.level < 1:
        p.error(f"--level must be in (0, 1), got {a.level}")

    def work():
        res = compare(a.baseline, a.variant, a.level)
        if not res["pairs"]:
            raise NotAValidationRun("no seed has a run in both arms: nothing to pair")
        if a.plot and res["stats"] is None:
            raise NotAValidationRun("no finished pair yet: nothing to plot")
        emit(markdown(res), {"baseline": [str(x) for x in a.baseline], "variant": [str(x) for x in a.variant],
                             **res}, a.json, plot(res) if a.plot else None, a.plot)
    return guarded(work, a.json, a.plot)


if __name__ == "__main__":
    sys.exit(main())
