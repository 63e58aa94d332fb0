"""One-off experiment (not part of the package): does fitting lrsgate's constants per layer
(`lrsgate_fit`, export/gate_fit.py) make the lowered float model agree more with Keras, on a
validation split, for a network other than the one the shipped constants were fitted to?

Why float and validation: a brought model's export has no validation split (its calibration
may draw any training image), so the choice between fixed and fitted constants is made here,
on images held out from both the fit and the calibration: the split the model trained with
(`load(data, val_size, seed)`: experiments/mobilenet_v2.py holds out 5,000 with seed 0), the
fit on the exporter's calibration sample of the rest. int8 figures come afterwards, once, from
experiments/int8_lowering_runtimes.py.

    python -m experiments.gate_fit_val --model runs/mnv2-tanhexp/model.keras \\
        --input-scale 0.00784313725490196 --input-offset -1 --json docs/results/gate-fit-val-mnv2.json
    python -m experiments.gate_fit_val --model runs/seed-tanhexp-s0/model.keras
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from runtime.cli import Parser

LOWERINGS = ("lrsgate", "lrsgate_fit", "elu3")


def _pooled_fit(model, calib) -> dict:
    """lrsgate's constants fitted once to every TanhExp layer's inputs pooled (equal shares)."""
    from export.gate_fit import fit_lrsgate, layer_inputs
    from export.lowering import LRSGATE
    from train.activations import TanhExp
    acts = [layer for layer in model.layers if isinstance(layer, TanhExp)]
    v = np.concatenate(list(layer_inputs(model, calib, acts, n=max(2000, 100_000 // len(acts))).values()))
    p, rms = fit_lrsgate(v, LRSGATE)
    return {"params": [round(q, 6) for q in p], "rms": round(rms, 6)}


def main(argv=None) -> int:
    ap = Parser(prog="python -m experiments.gate_fit_val", description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a TanhExp Keras model file")
    ap.add_argument("--data", help="as python -m train --data (default: the shipped copy)")
    ap.add_argument("--val-size", type=int, default=5000, help="the validation split the model trained with")
    ap.add_argument("--seed", type=int, default=0, help="its split seed")
    ap.add_argument("--input-scale", type=float)
    ap.add_argument("--input-offset", type=float)
    ap.add_argument("--json")
    a = ap.parse_args(argv)

    from export.lowering import fit_params, lowered_copy
    from export.run import calibration_sample, input_size, load_model
    from runtime.backends import normalization_from, normalize
    from runtime.imagefolder import resize_images
    from runtime.provenance import provenance
    from train.data import load

    model = load_model(Path(a.model))
    h, w = input_size(model)
    d = load(a.data, a.val_size, a.seed, size=(h, w))
    norm = normalization_from(a.input_scale, a.input_offset)
    calib = normalize(resize_images(calibration_sample(d.x_train, 500, 0), h, w), norm)
    xv = normalize(resize_images(d.x_val, h, w), norm)

    def predict(m):
        return np.concatenate([m(xv[i:i + 250], training=False).numpy() for i in range(0, len(xv), 250)])

    ref = predict(model)
    rows, fits = [], {}
    for name in (*LOWERINGS, "lrsgate_pooled"):
        if name == "lrsgate_pooled":  # one set of constants for the whole model, as the shipped ones
            pooled = _pooled_fit(model, calib)
            fits[name] = pooled
            p = predict(lowered_copy(model, "lrsgate_fit", params={k: pooled["params"] for k in fits["lrsgate_fit"]}))
        else:
            fit = fit_params(model, name, calib)
            fits.update({name: fit} if fit else {})
            p = predict(lowered_copy(model, name, params={k: v["params"] for k, v in fit.items()}))
        rows.append({"lowering": name, "val_agreement": float(np.mean(p.argmax(1) == ref.argmax(1))),
                     "val_accuracy": float(np.mean(p.argmax(1) == d.y_val)),
                     "max_abs_dp": float(np.abs(p - ref).max())})
        print(f"{name}: float agreement {rows[-1]['val_agreement'] * 100:.2f} %, accuracy "
              f"{rows[-1]['val_accuracy'] * 100:.2f} % (Keras {np.mean(ref.argmax(1) == d.y_val) * 100:.2f} %)")
    if a.json:
        Path(a.json).write_text(json.dumps({"provenance": provenance(), "model": a.model, "val_size": a.val_size,
                                            "seed": a.seed, "keras_val_accuracy": float(np.mean(ref.argmax(1) == d.y_val)),
                                            "rows": rows, "fits": fits}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
