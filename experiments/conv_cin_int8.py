"""One-off experiment (not part of the package, no tests): does a 3x3 convolution
with few input channels cost int8 more than float32 under LiteRT's XNNPACK on this CPU?

Why: tflite_op_costs.py found the seed net's first convolution (3 -> 32 channels, 32x32) ~3x
slower in int8 than in float32 on an AVX2-only x86, while the second (32 -> 64) cost the same.
XNNPACK's x86 int8 convolution kernels take input channels in groups of 8 ("c8" kernels), so a
3-channel image is padded to 8 and most of the int8 work is on zeros; its float kernels take
channels one at a time. If that is the cause, the int8 time stays flat from 3 to 8 input
channels while the float32 time grows with them. Random weights and calibration images: the
arithmetic, not the accuracy, is measured here.

    python experiments/conv_cin_int8.py [--cin 1 2 3 4 6 8 12 16] [--runs 3000] [--json out.json]
"""
import time

import numpy as np
from runtime.cli import Parser


def build(cin: int, cout: int = 32, side: int = 32):
    import tf_keras as keras
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((side, side, cin)),
                             keras.layers.Conv2D(cout, 3, activation="relu")])


def convert(model, int8: bool) -> bytes:
    import tensorflow as tf
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        shape = (1, *model.input_shape[1:])
        rng = np.random.default_rng(0)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([rng.random(shape, np.float32)] for _ in range(50))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


def p50(blobs: list[bytes], runs: int, rounds: int = 10) -> list[float]:
    """p50 us per model: warm blocks of runs // rounds calls, the models interleaved per round."""
    from runtime.backends.litert import LiteRTBackend
    invokes = []
    for b in blobs:  # the device's loader (runtime.backends), one thread, XNNPACK
        m = LiteRTBackend.load(b, threads=1)
        m.set_input(np.zeros((1, *m.input.shape[1:]), m.input.dtype))
        invokes.append(m.invoke_raw)
    per = runs // rounds
    t = np.zeros((len(invokes), rounds * per))
    for r in range(rounds):
        for j, invoke in enumerate(invokes):
            for _ in range(50):
                invoke()
            for i in range(per):
                t0 = time.perf_counter()
                invoke()
                t[j, r * per + i] = time.perf_counter() - t0
    return list(np.median(t, axis=1) * 1e6)


def main() -> None:
    ap = Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--cin", type=int, nargs="+", default=[1, 2, 3, 4, 6, 8, 12, 16])
    ap.add_argument("--runs", type=int, default=3000)
    ap.add_argument("--json", help="write the rows and provenance here")
    a = ap.parse_args()
    blobs = []
    for c in a.cin:
        m = build(c)
        blobs += [convert(m, False), convert(m, True)]
    t = p50(blobs, a.runs)
    from runtime.provenance import provenance
    dev = provenance()["device"]
    print(f"# {dev['cpu']} isa={dev['isa']!r}; Conv2D 3x3, 32x32xCin -> 30x30x32, ReLU; LiteRT "
          f"XNNPACK, 1 thread; p50 of {a.runs} calls (us)")
    print("| input channels | float32 | int8 | int8 / float32 |")
    print("|---|---|---|---|")
    for i, c in enumerate(a.cin):
        f, q = t[2 * i], t[2 * i + 1]
        print(f"| {c} | {f:.1f} | {q:.1f} | {q / f:.2f} |")
    if a.json:
        import json
        rows = [{"cin": c, "float32_us": t[2 * i], "int8_us": t[2 * i + 1]} for i, c in enumerate(a.cin)]
        with open(a.json, "w") as f:
            json.dump({"provenance": provenance(), "runs": a.runs, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
