"""python -m runtime.agreement --bundle DIR: why a quantized model disagrees with its float model.

A top-1 disagreement is either a *flip* (the quantized model prefers another class) or a *tie*:
the quantized output holds the same largest value for two classes, one of them the float
model's choice, and argmax picks the lower index. Ties are a property of the output's
resolution (an int8 softmax is 256 steps of 1/256, fixed by TFLite; its logits before it
are a calibrated int8 too), flips of the arithmetic inside. Telling them apart says which fix
can help: better lowering or calibration for flips, nothing short of a finer output for ties.
Runs on the device runtimes only (no TensorFlow), like the bench.
"""
from __future__ import annotations

import sys

import numpy as np

from runtime.backends import get_backend
from runtime.bundle import load_bundle, load_reference, load_test, verify
from runtime.errors import BenchError
from runtime.cli import Parser


def breakdown(probs: np.ndarray, ref: np.ndarray) -> dict:
    """Counts of agreement, ties that contain the reference's class, and flips."""
    ref_top = ref.argmax(1)
    dis = probs.argmax(1) != ref_top
    top = probs.max(1)
    tied = probs[np.arange(len(probs)), ref_top] == top  # the float choice shares the max
    ties = int((dis & tied).sum())
    return {"count": len(probs), "agreement": round(float(1 - dis.mean()), 6), "disagree": int(dis.sum()),
            "ties": ties, "flips": int(dis.sum()) - ties,
            "agreement_without_ties": round(float(1 - (dis & ~tied).mean()), 6)}


def analyse(bundle: str, modes=("int8", "qat", "dynamic", "float16"), threads: int = 1) -> list[dict]:
    inputs = load_bundle(bundle)
    x, _ = load_test(inputs.test_path)
    if inputs.reference_path is None:
        raise BenchError(f"{bundle}: no reference predictions in the manifest")
    ref = load_reference(inputs.reference_path, inputs.reference_key, len(x))
    rows = []
    for art in inputs.artifacts:
        if art.problem or art.mode not in modes:
            continue
        ok, why = verify(art)
        if not ok:
            raise BenchError(f"{art.file}: {why}")
        model = get_backend(art.format).load(art.path, threads=threads, normalization=inputs.normalization,
                                             layout_hint=art.layout, input_quant=art.input_quant,
                                             output_quant=art.output_quant)
        try:
            probs = model.run(x, batch=art.parity_batch or 500)
        finally:
            model.close()
        out = model.output
        rows.append({"file": art.file, **breakdown(probs, ref),
                     "output": f"{np.dtype(out.dtype).name}" + (f" scale {out.scale:.6g} zp {out.zero_point}"
                                                                 if out.quantized else "")})
    return rows


def main(argv=None) -> int:
    p = Parser(prog="python -m runtime.agreement", description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", required=True, metavar="DIR", help="an export folder (device bundle)")
    p.add_argument("--modes", default="int8,qat,dynamic,float16", metavar="M[,M]", help="which artifacts")
    a = p.parse_args(argv)
    try:
        rows = analyse(a.bundle, tuple(m for m in a.modes.split(",") if m))
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{'model':<16} {'agree %':>8} {'disagree':>8} {'ties':>5} {'flips':>6} {'agree w/o ties %':>16}  output")
    for r in rows:
        print(f"{r['file']:<16} {100 * r['agreement']:8.2f} {r['disagree']:8d} {r['ties']:5d} {r['flips']:6d} "
              f"{100 * r['agreement_without_ties']:16.2f}  {r['output']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
