"""python -m experiments.bench_speed: this trainer's epoch time vs the seed's plain `model.fit(arrays)`.

Same model, same data, same machine, one process; the two are interleaved in rounds
(A B, B A, ...) so that a noisy, shared machine slows both alike. Reported: the ratio of
median epoch-equivalent times and, more robust where round times jump (CPU steal), the
median of the per-round (paired) ratios. The seed's way: the whole training set as a
float32 array in memory, `fit(x, y, batch_size=100, shuffle=True)`, with TanhExp as the seed wrote it, a plain Keras activation
`x * tanh(exp(x))` differentiated op by op. Ours: `train.loop.train_dataset` (uint8 in
memory, scaled in the pipeline, gathered by index, prefetched) and the TanhExp layer's fused
XLA forward and backward kernels. For ReLU only the input pipeline differs.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from runtime.fileio import write_json
from runtime.provenance import provenance
from runtime.cli import Parser


def bench(act: str = "tanhexp", rounds: int = 20, chunk: int = 5000, data: str | None = None,
          limit: int | None = None, batch_size: int = 100, seed: int = 0, mixed_precision: bool = False) -> dict:
    import tensorflow as tf
    import tf_keras as keras

    from train.activations import tanhexp
    from train.precision import cpu_flags, mixed_policy
    from train.config import TrainConfig
    from train.data import load
    from train.loop import train_dataset
    from train.models import build

    s = load(data, 5000, seed)
    x, y = (s.x_train[:limit], s.y_train[:limit]) if limit else (s.x_train, s.y_train)
    x_float = x.astype("float32") / 255.0  # what the seed fed to fit()

    # What `train --mixed-precision` would pick here (an error where the hardware has none).
    policy = mixed_policy(len(tf.config.list_logical_devices("GPU")), cpu_flags()) if mixed_precision else "float32"

    def model(seed_way: bool):
        keras.utils.set_random_seed(seed)
        plain = None
        if seed_way and act == "tanhexp":
            plain = lambda name=None: keras.layers.Activation(tanhexp, name=name)  # noqa: E731
        # Layers take the global policy when built: the seed's side is always float32.
        keras.mixed_precision.set_global_policy("float32" if seed_way else policy)
        try:
            m = build("seed", act, make_act=plain, final_dtype="float32" if policy != "float32" else None)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        m.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", ["accuracy"])
        return m

    # Rounds of `chunk` images each (A then B, alternating which goes first), many of them:
    # on a shared machine a burst of load then hits a few rounds of both methods, and the
    # median of per-round epoch-equivalent times shrugs it off. Epoch time = round time
    # scaled to the full training set.
    cfg = TrainConfig(act=act, epochs=rounds + 2, batch_size=batch_size, seed=seed)
    seed_m, ours_m = model(True), model(False)
    steps = -(-min(chunk, len(y)) // batch_size)
    # A Dataset, not an iterator: Keras would wrap a Python iterator as a (slow) generator.
    ours_ds = train_dataset(x, y, cfg, 0)
    scale = len(y) / (steps * batch_size)
    times = {"seed_fit_numpy": [], "ours": []}
    rng = np.random.default_rng(seed)

    def run_seed():
        i = rng.integers(0, max(len(y) - steps * batch_size, 0) + 1)
        sl = slice(i, i + steps * batch_size)
        return seed_m.fit(x_float[sl], y[sl], batch_size=batch_size, epochs=1, shuffle=True, verbose=0)

    def run_ours():
        return ours_m.fit(ours_ds, steps_per_epoch=steps, epochs=1, verbose=0)

    runners = {"seed_fit_numpy": run_seed, "ours": run_ours}
    for r in range(rounds + 1):  # round 0 is warm-up (tracing, allocator): not timed
        order = list(runners) if r % 2 == 0 else list(runners)[::-1]
        dts = {}
        for k in order:
            t = time.perf_counter()
            runners[k]()
            dts[k] = (time.perf_counter() - t) * scale
            if r:
                times[k].append(dts[k])
        print(f"round {r}{' (warm-up)' if not r else ''}: seed fit {dts['seed_fit_numpy']:.2f} s/epoch, "
              f"ours {dts['ours']:.2f} s/epoch", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "act": act, "ours_precision": policy, "images": len(y), "batch_size": batch_size, "rounds": rounds, "round_images": steps * batch_size,
        "epoch_s": times, "median_epoch_s": med,
        "speedup": round(med["seed_fit_numpy"] / med["ours"], 3),
        "round_ratios": sorted(round(a / b, 3) for a, b in zip(times["seed_fit_numpy"], times["ours"])),
        "data": s.source, **provenance(),
    }


def main(argv=None) -> int:
    p = Parser(prog="python -m experiments.bench_speed", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--act", default="tanhexp", choices=("relu", "tanhexp"))
    p.add_argument("--rounds", type=int, default=20, help="timed rounds per method (after one warm-up)")
    p.add_argument("--chunk", type=int, default=5000, help="training images per round")
    p.add_argument("--data", default=None)
    p.add_argument("--limit", type=int, default=None, help="first N training images")
    p.add_argument("--mixed-precision", action="store_true",
                   help="train ours as `train --mixed-precision` would (bfloat16 on this kind of CPU)")
    p.add_argument("--json", default=None, help="write the result here")
    a = p.parse_args(argv)
    if a.rounds < 1 or a.chunk < 100 or (a.limit is not None and a.limit < 1):
        print("error: --rounds and --limit must be >= 1, --chunk >= 100", file=sys.stderr)
        return 2
    from runtime.fileio import check_writable
    from train.data import DataError, resolve
    try:
        resolve(a.data)  # before TensorFlow loads: a wrong path or an unwritable --json fail at once
        if a.json:
            _writable(a.json, check_writable)
        r = bench(a.act, a.rounds, a.chunk, a.data, a.limit, mixed_precision=a.mixed_precision)
    except (DataError, OSError, ValueError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    r["command"] = "python -m experiments.bench_speed " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"{a.act}: seed fit {r['median_epoch_s']['seed_fit_numpy']:.2f} s/epoch, this trainer "
          f"{r['median_epoch_s']['ours']:.2f} s/epoch -> {r['speedup']:.2f}x "
          f"(paired per-round median {statistics.median(r['round_ratios']):.2f}x)")
    if a.json:
        try:
            _writable(a.json, lambda path: write_json(path, r))
        except OSError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    return 0


def _writable(path, write) -> None:
    try:
        write(path)
    except OSError as e:  # the message names the option, not a temporary file
        raise OSError(f"cannot write --json {path}: {e.strerror or e}") from None


if __name__ == "__main__":
    from runtime.quietlog import native_logs_filtered
    with native_logs_filtered():  # TensorFlow's native log lines would bury a one-line error
        sys.exit(main())
