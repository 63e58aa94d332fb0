"""Convergence speed, the TanhExp paper's main claim, read from the runs' own history.csv:
the first epoch (and the training wall time up to it) at which validation accuracy reaches
each fixed threshold. Validation, never test: these are model-selection-side numbers."""
from __future__ import annotations

DEFAULT_THRESHOLDS = (0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85)


def time_to(rows: list[dict], threshold: float) -> dict | None:
    """{"epoch": k, "seconds": s} for the first epoch with val_accuracy >= threshold, or None
    if the run never got there. Seconds are summed epoch times (training + validation), so
    a slower activation pays for its slowness here."""
    seconds = 0.0
    for r in rows:
        seconds += float(r.get("seconds", 0.0))
        if float(r.get("val_accuracy", float("nan"))) >= threshold:
            return {"epoch": int(r["epoch"]), "seconds": round(seconds, 2)}
    return None


def convergence(rows: list[dict], thresholds=DEFAULT_THRESHOLDS) -> dict[str, dict | None]:
    return {f"{t:.2f}": time_to(rows, t) for t in thresholds}
