"""Experiment: what QAT should fit, scored on the validation split (the test split is not read).

For each run: post-training int8 (the exporter's `int8` mode) against QAT fine-tuned on the
labels and QAT fine-tuned on the float model's own outputs (`--qat-target float`,
self-distillation), each converted to int8 TFLite and run by LiteRT on the validation split:
top-1 agreement with the Keras float model and the accuracy change. Results in
docs/results.md ("QAT towards the float model").

    python -m experiments.qat_bench --run runs/seed-tanhexp-s0 --run runs/seed-relu-s0 --epochs 4 \
        --json docs/results/qat-targets.json
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from runtime.cli import Parser


def bench(run_dirs: list[str], epochs: int, lr: float, calib_size: int = 500) -> dict:
    from export.lowering import choose, has_tanhexp, lowered_copy
    from experiments.lowering_bench import predict
    from export.qat import QAT_TARGETS, fine_tune, to_tflite_int8
    from export.run import calibration_sample, load_model, load_splits, open_run, to_float
    from export.tflite import convert_int8
    from runtime.provenance import provenance

    rows = []
    for run_dir in run_dirs:
        run = open_run(run_dir)
        model, splits = load_model(run.model_path), load_splits(run)
        # The exporter's own lowerings of TanhExp for int8 and for QAT (nothing to lower for ReLU).
        low = {m: choose(m, "tflite") if has_tanhexp(model) else None for m in ("int8", "qat")}
        x_val = to_float(splits.x_val)
        ref = model.predict(x_val, batch_size=500, verbose=0).argmax(1)
        calib = to_float(calibration_sample(splits.x_train, calib_size, 0))

        def score(name: str, buf: bytes, seconds: float | None = None) -> None:
            p = predict(buf, x_val, 500).argmax(1)
            rows.append({"run": str(run.dir), "model": name, "agreement_val": float((p == ref).mean()),
                         "accuracy_change_val_pt": float(100 * ((p == splits.y_val).mean() - (ref == splits.y_val).mean())),
                         "fine_tune_seconds": seconds})
            r = rows[-1]
            print(f"{run.dir.name}: {name}: val agreement {100 * r['agreement_val']:.2f} %, accuracy "
                  f"{r['accuracy_change_val_pt']:+.2f} pt", file=sys.stderr, flush=True)

        score("ptq int8", convert_int8(lowered_copy(model, low["int8"]) if low["int8"] else model, calib))
        for target in QAT_TARGETS:
            q, info = fine_tune(model, splits, epochs, lr, lowering=low["qat"], calib=calib, verbose=0, target=target)
            score(f"qat on {target}", to_tflite_int8(q, calib), info["seconds"])
    return {"split": "validation", "epochs": epochs, "lr": lr, "calibration": {"split": "train", "count": calib_size},
            "rows": rows, **provenance()}


def main(argv=None) -> int:
    p = Parser(prog="python -m experiments.qat_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", required=True, help="a trained run folder (repeatable)")
    p.add_argument("--epochs", type=int, default=4, help="QAT epochs for both targets (default 4)")
    p.add_argument("--lr", type=float, default=1e-4, help="QAT Adam learning rate (default 1e-4)")
    p.add_argument("--json", default=None, help="write the rows here")
    a = p.parse_args(argv)
    if a.epochs < 1 or not (0 < a.lr < 1):
        print("error: --epochs must be >= 1 and --lr in (0, 1)", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: one-line errors
    from export.errors import BadInput
    try:
        out = bench(a.run, a.epochs, a.lr)
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for r in out["rows"]:
        print(f"{r['run']:32s} {r['model']:14s} agreement {100 * r['agreement_val']:6.2f} %  "
              f"accuracy {r['accuracy_change_val_pt']:+.2f} pt")
    if a.json:
        from runtime.fileio import write_json
        write_json(a.json, out)
    return 0


if __name__ == "__main__":
    from runtime.quietlog import native_logs_filtered
    with native_logs_filtered():  # TensorFlow's native log lines would bury a one-line error
        sys.exit(main())
