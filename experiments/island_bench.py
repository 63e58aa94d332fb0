"""Experiment: int8 TanhExp computed in float between the int8 convolutions, with a floored
conv range. Not used by the exporter; results in docs/lowering.md ("float island").

Two ideas, measured together against `elu3` (the int8 default) and ReLU's int8 model:

* float island: the converter leaves EXP, TANH and MUL in float (`denylisted_ops`), wrapped in
  DEQUANTIZE/QUANTIZE. XNNPACK takes all of them in float, so the graph does not split; the
  formula is the exact one (`naive`: in float32 inference tanh(exp(x)) is exact, exp
  overflowing to inf gives tanh = 1), so only the conv output and the activation output round.
* calibrated floor: the conv feeding TanhExp spans [-16, 7.4] in the seed net, so its int8 step is
  0.094. Setting the *recorded calibration minimum* of that tensor to -L before quantizing gives
  the step (max + L) / 255, and the conv's own requantization saturates at -L: f(max(x, -L))
  instead of f(x), an error of at most L e^-L, at no op's cost (a MAXIMUM op costs time; a
  bias-shifted fused RELU gets its range widened by the calibrator: docs/lowering.md).

It uses TFLite's calibrate-only conversion and `mlir_quantize` (private converter entry
points, the ones tf.lite.experimental.QuantizationDebugger drives) to edit one range.

    python -m experiments.island_bench --tanhexp-run runs/seed-tanhexp-s0 --relu-run runs/seed-relu-s0 \
        --floors 4,6 --json docs/results/island.json
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from export.tflite_ranges import calibrated, quantize
from runtime.cli import Parser

FLOAT_OPS = ["EXP", "TANH", "MUL"]  # the TanhExp formula's ops; the seed nets have no other MUL


def set_min(cal: bytes, name_part: str, lo: float) -> bytes:
    """Set the recorded calibration minimum of every tensor whose name contains `name_part`."""
    from tensorflow.lite.tools import flatbuffer_utils as fu
    model = fu.read_model_from_bytearray(bytearray(cal))
    hits = 0
    for t in model.subgraphs[0].tensors:
        q = t.quantization
        if name_part in t.name.decode() and q is not None and q.min is not None and len(q.min):
            q.min = np.array([lo], np.float32)
            hits += 1
    if not hits:
        raise ValueError(f"no calibrated tensor named like {name_part!r}")
    return bytes(fu.convert_object_to_bytearray(model))


def island(model, calib: np.ndarray, floor: float | None, conv: str = "conv2/BiasAdd") -> bytes:
    from export.lowering import lowered_copy
    cal = calibrated(lowered_copy(model, "naive"), calib)
    return quantize(set_min(cal, conv, -floor) if floor else cal, FLOAT_OPS)


def bench(tanhexp_run: str, relu_run: str, floors: list[float], seeds: int, rounds: int) -> dict:
    from export.lowering import lowered_copy
    from experiments.lowering_bench import predict, time_interleaved, tflite_ops
    from export.run import calibration_sample, load_model, load_splits, open_run, to_float
    from export.tflite import convert_int8
    from runtime.provenance import provenance

    runs = {act: open_run(r) for act, r in (("tanhexp", tanhexp_run), ("relu", relu_run))}
    models = {a: load_model(r.dir / "model.keras") for a, r in runs.items()}
    splits = {a: load_splits(r) for a, r in runs.items()}
    xval = {a: to_float(s.x_val) for a, s in splits.items()}
    refs = {a: models[a].predict(xval[a], batch_size=500, verbose=0).argmax(1) for a in runs}
    builders = {"relu int8": ("relu", lambda c: convert_int8(models["relu"], c)),
                "elu3 int8": ("tanhexp", lambda c: convert_int8(lowered_copy(models["tanhexp"], "elu3"), c)),
                **{f"island, floor {f:g}" if f else "island": ("tanhexp", lambda c, f=f: island(models["tanhexp"], c, f))
                   for f in [None, *floors]}}
    rows, first = {}, {}
    for seed in range(seeds):
        for name, (act, build) in builders.items():
            buf = build(to_float(calibration_sample(splits[act].x_train, 500, seed)))
            first.setdefault(name, (buf, act))
            p = predict(buf, xval[act], 500).argmax(1)
            r = rows.setdefault(name, {"agreement_val": [], "drop_val_pt": []})
            r["agreement_val"].append(float((p == refs[act]).mean()))
            r["drop_val_pt"].append(float(100 * ((refs[act] == splits[act].y_val).mean() - (p == splits[act].y_val).mean())))
            print(f"calibration seed {seed}: {name}: agreement {100 * r['agreement_val'][-1]:.2f} %", file=sys.stderr, flush=True)
    us = time_interleaved({k: (b, True) for k, (b, _) in first.items()}, xval["tanhexp"], rounds, 200)
    for name, r in rows.items():
        r.update(mean_agreement_val=float(np.mean(r["agreement_val"])), latency_us=us[name],
                 x_relu=us[name] / us["relu int8"], ops=tflite_ops(first[name][0]))
    return {"runs": {a: str(r.dir) for a, r in runs.items()}, "calibration": {"split": "train", "count": 500, "seeds": seeds},
            "latency": {"threads": 1, "rounds": rounds, "invokes_per_round": 200, "xnnpack": True}, "rows": rows, **provenance()}


def main(argv=None) -> int:
    p = Parser(prog="python -m experiments.island_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tanhexp-run", required=True, help="run folder of a TanhExp seed-architecture model")
    p.add_argument("--relu-run", required=True, help="run folder of the ReLU model it is compared with")
    p.add_argument("--floors", default="4,6", help="conv-range floors L to try, comma-separated (default 4,6)")
    p.add_argument("--seeds", type=int, default=3, help="calibration samples (seeds 0..N-1, 500 training images each)")
    p.add_argument("--rounds", type=int, default=20, help="interleaved latency rounds")
    p.add_argument("--json", default=None, help="write the rows here")
    a = p.parse_args(argv)
    try:
        floors = [float(f) for f in a.floors.split(",")]
        if any(f <= 0 for f in floors) or a.seeds < 1 or a.rounds < 1:
            raise ValueError
    except ValueError:
        print("error: --floors must be positive numbers, --seeds and --rounds >= 1", file=sys.stderr)
        return 2
    from export.errors import BadInput
    try:
        out = bench(a.tanhexp_run, a.relu_run, floors, a.seeds, a.rounds)
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, r in out["rows"].items():
        print(f"{name:18s} agreement {100 * r['mean_agreement_val']:6.2f} %  {r['latency_us']:6.1f} us  {r['x_relu']:.2f}x ReLU")
    if a.json:
        from runtime.fileio import write_json
        write_json(a.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
