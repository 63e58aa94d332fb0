"""One-off experiment (not part of the package, no tests): how exact are LiteRT's
float32 EXP, TANH and LOGISTIC kernels, under XNNPACK and under TFLite's own kernels?

Why: the 50-epoch TanhExp seed net rebuilt on an AVX-512 EPYC exported a float32.tflite whose
max |dp| against Keras was 1.10e-5 on the test split, over the then target of 1e-5, where the ReLU net
gave 3.96e-6 and the ONNX file 3.8e-6. On the validation split the same file gives 8.8e-6 under
XNNPACK and 2.9e-6 under TFLite's own kernels, with either TanhExp formula (bounded3 or naive),
so the runtime's elementwise kernels are the suspects. This runs each op alone on a dense grid
and reports its worst error against float64 numpy, in float32 ulps and relative.

    python experiments/tflite_elementwise_accuracy.py [--json out.json]
"""
from pathlib import Path

import numpy as np
from runtime.cli import Parser

GRIDS = {  # op -> (TF function, float64 reference, input range: what TanhExp feeds it)
    "EXP": ("exp", np.exp, (-12.0, 3.0)),              # exp(min(x, 3)) for conv outputs ~[-16, 8]
    "TANH": ("tanh", np.tanh, (0.0, 20.1)),           # tanh(e^x), e^x in (0, e^3]
    "LOGISTIC": ("sigmoid", lambda v: 1 / (1 + np.exp(-v)), (-12.0, 12.0)),
}


def main() -> None:
    import tensorflow as tf

    from experiments.lowering_bench import interpreter
    from runtime.provenance import provenance
    ap = Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=200001)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    rows = []
    for op, (fn, ref, (lo, hi)) in GRIDS.items():
        x = np.linspace(lo, hi, a.points, dtype=np.float32).reshape(1, -1)
        f = tf.function(getattr(tf.math, fn), input_signature=[tf.TensorSpec(x.shape, tf.float32)])
        buf = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f).convert()
        r = ref(x.astype(np.float64))
        for kernels, xnn in (("xnnpack", True), ("builtin", False)):
            it = interpreter(buf, 1, xnn)
            it.set_tensor(it.get_input_details()[0]["index"], x)
            it.invoke()
            y = it.get_tensor(it.get_output_details()[0]["index"]).astype(np.float64)
            err = np.abs(y - r)
            ulp = err / np.spacing(np.abs(r).astype(np.float32)).astype(np.float64)
            rows.append({"op": op, "kernels": kernels, "range": [lo, hi], "points": a.points,
                         "max_ulp": round(float(ulp.max()), 2), "mean_ulp": round(float(ulp.mean()), 3),
                         "max_rel": float((err / np.maximum(np.abs(r), 1e-30)).max())})
            print(f"{op:9s} {kernels:8s} max {rows[-1]['max_ulp']:6.1f} ulp, mean {rows[-1]['mean_ulp']:.3f} ulp, "
                  f"max rel {rows[-1]['max_rel']:.2e}", flush=True)
    if a.json:
        from runtime.fileio import write_json
        write_json(a.json, {"rows": rows, **provenance()})


if __name__ == "__main__":
    main()
