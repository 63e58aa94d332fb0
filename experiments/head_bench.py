"""Does a finer int8 grid for the logits fix int8's tied outputs? A measured experiment.

    python -m experiments.head_bench --run runs/seed-relu-s0 --floors=-4,-8 --json docs/results/head-relu.json

Why: a third of int8's top-1 disagreements with Keras are exact ties of the int8 output
(`python -m runtime.agreement`): the final dense layer's int8 output spans the calibrated
logit range (e.g. -27 ... +17.8, a step of 0.175), so two close logits land on one level. The
rewrite: softmax is shift-invariant, so Dense(z) -> softmax equals Dense(z - f) -> ReLU ->
softmax wherever every logit is >= f; with the ReLU fused into FULLY_CONNECTED, the int8
output range becomes [0, max - f] instead of [min, max], a finer step for the same function
(only logits below f, whose probabilities are ~e^f times the top one's, are clipped).

Protocol as export's int8 (500 calibration images from the TRAINING split, full-integer,
int8 I/O, the int8 TanhExp lowering); agreement with the Keras float model and ties on the
validation split (for choosing f) and the test split (reported, not chosen on).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from runtime.cli import Parser


def shifted_head(model, floor: float):
    """The model with its last Dense(softmax) as Dense(bias - floor, relu) -> Softmax."""
    import tf_keras as keras
    dense = model.layers[-1]
    w, b = dense.get_weights()
    new = keras.layers.Dense(dense.units, activation="relu", name="logits_shifted")
    y = new(model.layers[-2].output)
    new.set_weights([w, b - floor])
    return keras.Model(model.input, keras.layers.Softmax(name="probs")(y))


def measure(path: Path, images: np.ndarray, labels: np.ndarray, ref: np.ndarray) -> dict:
    from export.tflite import predict
    q = np.asarray(predict(path, images)[0])
    tied = (q == q.max(1, keepdims=True)).sum(1) > 1
    return {"agreement": float((q.argmax(1) == ref.argmax(1)).mean()),
            "accuracy": float((q.argmax(1) == labels).mean()), "tied_outputs": int(tied.sum())}


def bench(run: str, floors: list[float], calib_size: int = 500, calib_seed: int = 0) -> dict:
    from export.lowering import choose, has_tanhexp, lowered_copy
    from export.run import calibration_sample, load_model, load_splits, open_run, to_float
    from export.tflite import convert_int8
    from runtime.provenance import provenance

    r = open_run(run)
    model = load_model(r.dir / "model.keras")
    splits = load_splits(r)
    calib = to_float(calibration_sample(splits.x_train, calib_size, calib_seed))
    base = lowered_copy(model, choose("int8")) if has_tanhexp(model) else model
    data = {"val": (splits.x_val, splits.y_val), "test": (splits.x_test, splits.y_test)}
    refs = {k: model.predict(to_float(x), batch_size=500, verbose=0) for k, (x, _) in data.items()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for floor in [None, *floors]:
            path = Path(tmp) / "m.tflite"
            path.write_bytes(convert_int8(base if floor is None else shifted_head(base, floor), calib))
            row = {"floor": floor, **{k: measure(path, x, y, refs[k]) for k, (x, y) in data.items()}}
            print(f"floor {floor}: " + "; ".join(f"{k} agreement {100 * v['agreement']:.2f} %, "
                                                f"{v['tied_outputs']} tied" for k, v in row.items() if k != "floor"),
                  file=sys.stderr, flush=True)
            rows.append(row)
    return {"run": str(r.dir), "calibration": {"split": "train", "count": len(calib), "seed": calib_seed},
            "rows": rows, **provenance()}


def main(argv=None) -> int:
    p = Parser(prog="python -m experiments.head_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run folder with model.keras")
    p.add_argument("--floors", default="-4,-8", help="logit floors f to try, comma-separated; write --floors=-4,-8 (with =: they start with a minus)")
    p.add_argument("--json", default=None, help="write the rows here")
    a = p.parse_args(argv)
    try:
        floors = [float(f) for f in a.floors.split(",")]
    except ValueError:
        print(f"error: --floors must be numbers, got {a.floors!r}", file=sys.stderr)
        return 2
    from export.errors import BadInput
    try:
        out = bench(a.run, floors)
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.json:
        from runtime.fileio import write_json
        write_json(a.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
