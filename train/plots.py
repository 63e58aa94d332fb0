"""accuracy.png: train vs validation accuracy per epoch, as in the seed's plot."""
from __future__ import annotations


def plot_history(rows: list[dict], path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")  # files only; no display on servers, CI or a Pi
    import matplotlib.pyplot as plt

    from runtime.fileio import atomic_path

    ep = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ep, [r["accuracy"] for r in rows], label="train")
    if rows and "val_accuracy" in rows[0]:
        ax.plot(ep, [r["val_accuracy"] for r in rows], label="validation")
    ax.set(xlabel="epoch", ylabel="accuracy", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
