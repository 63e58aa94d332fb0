"""PNG plots for runtime.report. The only module that imports matplotlib, and only here,
so that the bench on a device never needs it."""
from __future__ import annotations

from pathlib import Path

from runtime.errors import BenchError

try:
    import matplotlib
    matplotlib.use("Agg")  # files only; no display on a server or a Pi
    import matplotlib.pyplot as plt
except ImportError:
    raise BenchError("the report's plots need matplotlib: pip install matplotlib "
                     "(or pass --no-plots)") from None

MARKERS = {"tflite": "o", "onnx": "s"}


def measured(rows) -> tuple[list, list[str]]:
    """The rows whose timings were measured, and the devices left out because they are emulated
    (qemu: the emulator's speed, not the device's). Nothing emulated goes on a latency axis."""
    left_out = sorted({r["device"] for r in rows if r.get("_emulated")})
    return [r for r in rows if not r.get("_emulated")], left_out


def _note_left_out(fig, left_out) -> None:
    if left_out:
        fig.text(0.01, 0.005, f"not plotted (emulated CPU, timings meaningless): {', '.join(left_out)}",
                 fontsize=7, color="dimgray", ha="left", va="bottom")


def _readable_log_axis(ax) -> None:
    # matplotlib's default log ticks are powers of ten only (often one or none on a narrow
    # latency range); label 1-2-5 steps as plain numbers instead of 10^-1.
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _save(fig, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=110)
    plt.close(fig)
    return f"{name}.png"


def latency_vs_accuracy(rows, out: Path) -> str | None:
    rows, left_out = measured(rows)
    pts = [r for r in rows if not r.get("error") and r.get("accuracy") is not None
           and r.get("latency_ms_p50")]
    if not pts:
        return None
    devices = sorted({r["device"] for r in pts})
    modes = sorted({r.get("mode") or "?" for r in pts})
    colors = {m: plt.cm.tab10(i % 10) for i, m in enumerate(modes)}
    fig, axes = plt.subplots(1, len(devices), figsize=(5.2 * len(devices), 4.2), squeeze=False)
    for ax, dev in zip(axes[0], devices):
        for r in (r for r in pts if r["device"] == dev):
            mode = r.get("mode") or "?"
            filled = r["act"] != "tanhexp"  # ReLU filled, TanhExp hollow
            ax.scatter(r["latency_ms_p50"], r["accuracy"], marker=MARKERS.get(r["format"], "^"),
                       s=60, edgecolors=colors[mode], facecolors=colors[mode] if filled else "none",
                       linewidths=1.5)
        ax.set_xscale("log")
        _readable_log_axis(ax)
        ax.set_title(dev)
        ax.set_xlabel("single-image latency p50 (ms, log)")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=c, marker="o", ls="", label=m) for m, c in colors.items()]
    handles += [plt.Line2D([], [], color="gray", marker=mk, ls="", label=f) for f, mk in MARKERS.items()]
    handles += [plt.Line2D([], [], color="gray", marker="o", ls="", mfc="none", label="tanhexp (hollow)")]
    axes[0][-1].legend(handles=handles, fontsize=8, loc="best")
    fig.suptitle("Latency vs accuracy per format (marker) and precision (colour)")
    _note_left_out(fig, left_out)
    return _save(fig, out, "latency_vs_accuracy")


def _grouped_bars(ax, labels, series: dict[str, list], xlabel: str):
    n = max(len(series), 1)
    h = 0.8 / n
    for i, (name, vals) in enumerate(series.items()):
        ys = [j + (i - (n - 1) / 2) * h for j in range(len(labels))]
        ax.barh(ys, [v if v is not None else 0 for v in vals], height=h, label=name)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8)


def act_ratios(pairs, out: Path) -> str | None:
    pairs, left_out = measured(pairs)
    if not pairs:
        return None
    labels = sorted({f"{p['format']}/{p['mode']}" for p in pairs})
    devices = sorted({p["device"] for p in pairs})
    get = {(p["device"], f"{p['format']}/{p['mode']}"): p["latency_ratio"] for p in pairs}
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(labels) * max(1, len(devices) / 2) + 1.8))
    _grouped_bars(ax, labels, {d: [get.get((d, lab)) for lab in labels] for d in devices},
                  "latency TanhExp / ReLU (p50)")
    ax.axvline(1.0, color="k", lw=1)
    ax.set_title("TanhExp vs ReLU: single-image latency ratio")
    _note_left_out(fig, left_out)
    return _save(fig, out, "tanhexp_vs_relu")


def deltas(rows, out: Path) -> str | None:
    rows = [d for d in rows if d["mode"] != "float32"]  # float32 is the baseline itself
    if not rows:
        return None
    labels = sorted({f"{d['format']}/{d['mode']}" for d in rows})
    groups = sorted({f"{d['device']} {d['act']}" for d in rows})
    acc = {(f"{d['device']} {d['act']}", f"{d['format']}/{d['mode']}"): d for d in rows}
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 0.45 * len(labels) * max(1, len(groups) / 2) + 2))
    pick = lambda key, f: {g: [f(acc[(g, lab)][key]) if (g, lab) in acc and acc[(g, lab)][key]
                              is not None else None for lab in labels] for g in groups}
    _grouped_bars(a1, labels, pick("acc_delta_pp", float), "accuracy - float32 accuracy (pp)")
    a1.axvline(0, color="k", lw=1)
    _grouped_bars(a2, labels, pick("agreement_ref", lambda v: (1 - v) * 100),
                  "top-1 disagreement with Keras float (%)")
    fig.suptitle("Accuracy and agreement deltas vs float")
    return _save(fig, out, "deltas_vs_float")


def draw_all(rows, pairs, delta_rows, out: Path) -> dict[str, str]:
    made = {"latency_vs_accuracy": latency_vs_accuracy(rows, out),
            "tanhexp_vs_relu": act_ratios(pairs, out),
            "deltas_vs_float": deltas(delta_rows, out)}
    return {k: v for k, v in made.items() if v}
