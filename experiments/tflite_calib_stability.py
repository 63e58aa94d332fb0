"""Experiment: how much does TFLite int8 accuracy depend on the calibration sample, and do
percentile ranges (export/tflite_ranges.py) hold it steadier than the calibrator's min/max?

For one trained run with a validation split: for each calibration size and each sample seed
(seeded samples of the TRAINING split, as the exporter draws them), calibrate once, then
quantize with min/max ranges and with each percentile; score every int8 model on the
VALIDATION split against the Keras float model (accuracy drop in points, top-1 agreement).
The test split is never read. Rows: per (size, ranges), the drop's mean, std, min and max over
the seeds, and the mean agreement.

    python experiments/tflite_calib_stability.py --run runs/resnet8-strong-sgd-relu-s0 \
        --sizes 500,2000 --seeds 5 --percentiles 99.9,99.99,99.999 --json docs/results/calib-stability.json
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from runtime.cli import Parser


def stability(run_dir: str, sizes: list[int], seeds: int, percentiles: list[float]) -> dict:
    from export.lowering import choose, has_tanhexp, lowered_copy
    from experiments.lowering_bench import predict
    from export.run import calibration_sample, load_model, load_splits, open_run, to_float
    from export.tflite_ranges import calibrated, percentile_ranges, quantize
    from runtime.provenance import provenance

    run = open_run(run_dir)
    model = load_model(run.model_path)
    splits = load_splits(run)
    if not len(splits.y_val):
        raise SystemExit(f"error: {run_dir} has no validation split (trained with --val-size 0)")
    lowering = choose("int8", "tflite") if has_tanhexp(model) else None
    lowered = lowered_copy(model, lowering) if lowering else model
    xval = to_float(splits.x_val)
    ref = model.predict(xval, batch_size=500, verbose=0).argmax(1)
    float_acc = float((ref == splits.y_val).mean())
    print(f"keras float: validation accuracy {100 * float_acc:.2f} % on {len(ref)} images", file=sys.stderr)
    raw = []
    for size in sizes:
        for seed in range(seeds):
            calib = to_float(calibration_sample(splits.x_train, size, seed))
            cal = calibrated(lowered, calib)
            for pct in [None, *percentiles]:
                t0 = time.perf_counter()
                c, info = (cal, {"ranges": "min/max"}) if pct is None else percentile_ranges(cal, calib, pct)
                pred = predict(quantize(c), xval, 500).argmax(1)
                acc = float((pred == splits.y_val).mean())
                raw.append({"size": size, "seed": seed, "ranges": info["ranges"], "percentile": pct,
                            "median_width_vs_minmax": info.get("median_width_vs_minmax"),
                            "val_accuracy": acc, "drop_pt": round(100 * (float_acc - acc), 3),
                            "agreement": float((pred == ref).mean()), "seconds": round(time.perf_counter() - t0, 1)})
                r = raw[-1]
                print(f"size {size} seed {seed} {r['ranges']:>17s}: drop {r['drop_pt']:+.2f} pt, "
                      f"agreement {100 * r['agreement']:.2f} % ({r['seconds']} s)", file=sys.stderr, flush=True)
    rows = []
    for size in sizes:
        for pct in [None, *percentiles]:
            sel = [r for r in raw if r["size"] == size and r["percentile"] == pct]
            d = np.array([r["drop_pt"] for r in sel])
            rows.append({"size": size, "ranges": sel[0]["ranges"], "seeds": len(sel),
                         "drop_mean_pt": round(float(d.mean()), 3), "drop_std_pt": round(float(d.std(ddof=1)), 3) if len(d) > 1 else None,
                         "drop_min_pt": float(d.min()), "drop_max_pt": float(d.max()),
                         "agreement_mean": round(float(np.mean([r["agreement"] for r in sel])), 5)})
    return {"run": str(run.dir), "model_sha256": run.model_sha256, "lowering": lowering,
            "validation": {"images": int(len(ref)), "float_accuracy": float_acc},
            "calibration": {"split": "train", "sizes": sizes, "seeds": list(range(seeds))},
            "rows": rows, "raw": raw, **provenance()}


def main(argv=None) -> int:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a run folder trained with a validation split")
    p.add_argument("--sizes", default="500,2000", help="calibration sizes, comma-separated")
    p.add_argument("--seeds", type=int, default=5, help="calibration samples per size (seeds 0..N-1)")
    p.add_argument("--percentiles", default="99.9,99.99,99.999", help="percentiles tried beside min/max")
    p.add_argument("--json", default=None, help="write the rows here")
    a = p.parse_args(argv)
    out = stability(a.run, [int(s) for s in a.sizes.split(",")], a.seeds, [float(s) for s in a.percentiles.split(",")])
    print(f"{'size':>5s} {'ranges':>17s} {'drop mean':>9s} {'std':>5s} {'min':>6s} {'max':>6s} {'agreement':>9s}")
    for r in out["rows"]:
        std = f"{r['drop_std_pt']:.2f}" if r["drop_std_pt"] is not None else "-"
        print(f"{r['size']:5d} {r['ranges']:>17s} {r['drop_mean_pt']:+9.2f} {std:>5s} {r['drop_min_pt']:+6.2f} "
              f"{r['drop_max_pt']:+6.2f} {100 * r['agreement_mean']:8.2f} %")
    if a.json:
        from runtime.fileio import write_json
        write_json(a.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
