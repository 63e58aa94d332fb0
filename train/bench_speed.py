"""python -m train.bench_speed: this trainer's epoch time vs the seed's plain `model.fit(arrays)`.

Same model, same data, same machine, one process; the two are interleaved epoch by epoch
(A B A B ...) so that a noisy, shared machine slows both alike, and the ratio of medians is
reported. The seed's way: the whole training set as a float32 array in memory, `fit(x, y,
batch_size=100, shuffle=True)`, with TanhExp as the seed wrote it, a plain Keras activation
`x * tanh(exp(x))` differentiated op by op. Ours: `train.loop.train_dataset` (uint8 in
memory, scaled in the pipeline, gathered by index, prefetched) and the TanhExp layer's fused
XLA forward and backward kernels. For ReLU only the input pipeline differs.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

from runtime.fileio import write_json
from runtime.provenance import provenance


def bench(act: str = "tanhexp", epochs: int = 3, data: str | None = None, limit: int | None = None,
          batch_size: int = 100, seed: int = 0) -> dict:
    import tf_keras as keras

    from train.activations import tanhexp
    from train.config import TrainConfig
    from train.data import load
    from train.loop import train_dataset
    from train.models import build

    s = load(data, 5000, seed)
    x, y = (s.x_train[:limit], s.y_train[:limit]) if limit else (s.x_train, s.y_train)
    x_float = x.astype("float32") / 255.0  # what the seed fed to fit()

    def model(seed_way: bool):
        keras.utils.set_random_seed(seed)
        plain = None
        if seed_way and act == "tanhexp":
            plain = lambda name=None: keras.layers.Activation(tanhexp, name=name)  # noqa: E731
        m = build("seed", act, make_act=plain)
        m.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", ["accuracy"])
        return m

    cfg = TrainConfig(act=act, epochs=epochs + 1, batch_size=batch_size, seed=seed)
    seed_m, ours_m = model(True), model(False)
    ours_ds = train_dataset(x, y, cfg, 0)
    steps = -(-len(y) // batch_size)
    ours_it = iter(ours_ds)  # one pass per epoch below, so the same batches the trainer would use
    times = {"seed_fit_numpy": [], "ours": []}
    accs = {"seed_fit_numpy": [], "ours": []}
    # Epoch 0 of each is warm-up (graph tracing, allocator): excluded from the medians.
    for e in range(epochs + 1):
        t = time.perf_counter()
        h = seed_m.fit(x_float, y, batch_size=batch_size, epochs=1, shuffle=True, verbose=0)
        dt_seed = time.perf_counter() - t
        t = time.perf_counter()
        h2 = ours_m.fit(ours_it, steps_per_epoch=steps, epochs=1, verbose=0)
        dt_ours = time.perf_counter() - t
        if e:
            times["seed_fit_numpy"].append(dt_seed)
            times["ours"].append(dt_ours)
        accs["seed_fit_numpy"].append(h.history["accuracy"][-1])
        accs["ours"].append(h2.history["accuracy"][-1])
        print(f"epoch {e}{' (warm-up)' if not e else ''}: seed fit {dt_seed:.2f} s, ours {dt_ours:.2f} s",
              file=sys.stderr)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "act": act, "images": len(y), "batch_size": batch_size, "epochs_timed": epochs,
        "epoch_s": times, "median_epoch_s": med,
        "speedup": round(med["seed_fit_numpy"] / med["ours"], 3),
        "train_accuracy_per_epoch": accs, "data": s.source, **provenance(),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.bench_speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--act", default="tanhexp", choices=("relu", "tanhexp"))
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per method (after one warm-up)")
    p.add_argument("--data", default=None)
    p.add_argument("--limit", type=int, default=None, help="first N training images")
    p.add_argument("--json", default=None, help="write the result here")
    a = p.parse_args(argv)
    if a.epochs < 1 or (a.limit is not None and a.limit < 1):
        print("error: --epochs and --limit must be >= 1", file=sys.stderr)
        return 2
    r = bench(a.act, a.epochs, a.data, a.limit)
    r["command"] = "python -m train.bench_speed " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"{a.act}: seed fit {r['median_epoch_s']['seed_fit_numpy']:.2f} s/epoch, this trainer "
          f"{r['median_epoch_s']['ours']:.2f} s/epoch -> {r['speedup']:.2f}x")
    if a.json:
        write_json(a.json, r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
