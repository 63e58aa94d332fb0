"""Experiment: full-integer TFLite with its first block left in float, for x86 CPUs without VNNI.

Why: on an AVX2-only EPYC, int8.tflite is slower than float32.tflite (1.52x), and the per-op
split (results.md) put all of the loss in the first convolution: XNNPACK's x86 int8
kernels take input channels in groups of 8, so an RGB image costs as much as 8 channels, and
without VNNI an int8 product is no cheaper than a float FMA (conv 1: 105 us int8 against
34-38 us float32; conv 2 costs the same in both). So: keep the first convolution in float and
everything else in int8. The file keeps int8 input and output (the converter puts a DEQUANTIZE
after the input, which is exact for pixels: scale 1/255), so it is a drop-in int8.tflite for
the device bundle and the bench.

Variants, built from one calibration (the converter's calibrate-only half, then `mlir_quantize`
with `denylisted_nodes`, the same private entry points tf.lite.experimental.QuantizationDebugger
uses for selective quantization):
* `int8`: every op int8 (what `python -m export` writes; min/max ranges);
* `int8, conv 1 float`: the first CONV_2D (with a fused ReLU, for ReLU nets) left in float
  (what `python -m export --tflite-float-layers conv1` writes, export/tflite_select.py);
* `int8, block 1 float`: every op before the first MAX_POOL_2D in float, so TanhExp's first
  activation too (it then runs as float ops, with no int8 rounding inside it);
beside `float32` (export's float32.tflite). Accuracy: validation split, against the Keras
float model, over `--seeds` calibration samples of the TRAINING split. Latency: XNNPACK,
1 thread, single images, all files interleaved in one process (experiments.lowering_bench).
The test split is never read.

    python experiments/tflite_float_first_conv.py --run runs/seed-e10-relu-s0 \
        --run runs/seed-e10-tanhexp-s0 --json docs/results/float-first-conv-avx2-e10.json
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from runtime.cli import Parser


def first_nodes(cal: bytes, upto: str | None) -> list[str]:
    """Output tensor names of the first operator (upto=None), or of every operator before the
    first `upto` op: the names `mlir_quantize(denylisted_nodes=...)` matches."""
    from tensorflow.lite.tools import flatbuffer_utils as fu

    from export.opcheck import tflite_ops
    ops = tflite_ops(cal)
    g = fu.read_model_from_bytearray(bytearray(cal)).subgraphs[0]
    assert len(ops) == len(g.operators), "one subgraph expected"
    stop = 1 if upto is None else ops.index(upto)
    return [g.tensors[t].name.decode() for op in g.operators[:stop] for t in op.outputs]


VARIANTS = {"int8": lambda cal: [], "int8, conv 1 float": lambda cal: first_nodes(cal, None),
            "int8, block 1 float": lambda cal: first_nodes(cal, "MAX_POOL_2D")}


def measure(run_dir: str, seeds: int, calib_size: int, rounds: int) -> dict:
    from export.lowering import choose, has_tanhexp, lowered_copy
    from experiments.lowering_bench import predict, time_interleaved, tflite_ops
    from export.run import calibration_sample, load_model, load_splits, open_run, to_float
    from export.tflite import _convert, _converter
    from export.tflite_ranges import calibrated, quantize

    run = open_run(run_dir)
    model = load_model(run.model_path)
    splits = load_splits(run)
    if not len(splits.y_val):
        raise SystemExit(f"error: {run_dir} has no validation split (trained with --val-size 0)")
    tanhexp = has_tanhexp(model)
    int8_model = lowered_copy(model, choose("int8", "tflite")) if tanhexp else model
    float_model = lowered_copy(model, choose("float32", "tflite")) if tanhexp else model
    xval = to_float(splits.x_val)
    ref = model.predict(xval, batch_size=500, verbose=0).argmax(1)
    float_acc = float((ref == splits.y_val).mean())
    files = {"float32": _convert(_converter(float_model)[1])}
    rows = {"float32": {"agreement": [1.0], "drop_pt": [0.0]}}
    for seed in range(seeds):
        cal = calibrated(int8_model, to_float(calibration_sample(splits.x_train, calib_size, seed)))
        for name, nodes in VARIANTS.items():
            buf = quantize(cal, float_nodes=nodes(cal))
            files.setdefault(name, buf)
            p = predict(buf, xval, 500).argmax(1)
            r = rows.setdefault(name, {"agreement": [], "drop_pt": []})
            r["agreement"].append(float((p == ref).mean()))
            r["drop_pt"].append(round(100 * (float_acc - float((p == splits.y_val).mean())), 3))
            print(f"{run.dir.name} seed {seed} {name}: agreement {100 * r['agreement'][-1]:.2f} %, "
                  f"drop {r['drop_pt'][-1]:+.2f} pt", file=sys.stderr, flush=True)
    us = time_interleaved({k: (b, True) for k, b in files.items()}, xval, rounds, 200)
    for name, r in rows.items():
        r.update(agreement_mean=float(np.mean(r["agreement"])), drop_mean_pt=round(float(np.mean(r["drop_pt"])), 3),
                 latency_us=round(us[name], 1), x_float32=round(us[name] / us["float32"], 3),
                 x_int8=round(us[name] / us["int8"], 3), ops=tflite_ops(files[name]), kb=round(len(files[name]) / 1024, 1))
    return {"run": str(run.dir), "model_sha256": run.model_sha256, "tanhexp": tanhexp,
            "validation": {"images": int(len(ref)), "float_accuracy": float_acc},
            "calibration": {"split": "train", "count": calib_size, "seeds": list(range(seeds)), "ranges": "min/max"},
            "rows": rows}


def main(argv=None) -> int:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", required=True, help="a run folder with a validation split (repeatable)")
    p.add_argument("--seeds", type=int, default=3, help="calibration samples (seeds 0..N-1)")
    p.add_argument("--calib-size", type=int, default=500, help="calibration images per sample (training split)")
    p.add_argument("--rounds", type=int, default=15, help="interleaved latency rounds of 200 single-image calls")
    p.add_argument("--label", default=None, help="what machine this is, for the record")
    p.add_argument("--json", default=None, help="write the rows here")
    a = p.parse_args(argv)
    from runtime.provenance import provenance
    out = {"label": a.label, "latency": {"threads": 1, "xnnpack": True, "rounds": a.rounds, "invokes_per_round": 200},
           "runs": [measure(r, a.seeds, a.calib_size, a.rounds) for r in a.run], **provenance()}
    for m in out["runs"]:
        print(f"{m['run']} (validation float {100 * m['validation']['float_accuracy']:.2f} %)")
        for name, r in m["rows"].items():
            print(f"  {name:20s} agreement {100 * r['agreement_mean']:6.2f} %  drop {r['drop_mean_pt']:+.2f} pt  "
                  f"{r['latency_us']:6.1f} us  {r['x_float32']:.2f}x float32  {r['x_int8']:.2f}x int8  {r['kb']} KB")
    if a.json:
        from runtime.fileio import write_json
        write_json(a.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
