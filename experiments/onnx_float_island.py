"""One-off experiment (not part of the package, no tests): TanhExp's int8 ONNX model
with the whole activation in float between the quantized convolutions.

Why: `python -m runtime.profile` showed TanhExp's int8.onnx spending 56 % of its time in the
activation (results.md): standard ONNX has no quantized Elu or Tanh, so the `elu3`
lowering runs as DequantizeLinear -> float op -> QuantizeLinear three times, with QLinearAdd and
QLinearMul between, each rounding to int8. The alternative: the exact float formula (`naive`, the
float32 export's) with its Exp, Tanh and Mul left unquantized (`export.onnx_qdq.float_island`), so each
TanhExp is one DequantizeLinear, Exp, Tanh, Mul in float, one QuantizeLinear. It became the
exporter's int8.onnx for TanhExp.
Fewer nodes and one rounding instead of five. Same calibration sample (500 training images, the
exporter's seed); agreement with the Keras model on the *validation* split (the test split is not
read); latency p50 of single-image calls on the validation images, both files in one process,
interleaved, with the bench's session options (exact int8 kernels where the CPU needs them).

    python experiments/onnx_float_island.py --run runs/seed-e10-tanhexp-s0 [--json out.json]
"""
import json
import tempfile
from pathlib import Path

import numpy as np

from export.config import ExportConfig
from export.run import Job, load_model, load_splits, open_run, to_float
from runtime.cli import Parser

def build(job, tmp: Path) -> dict[str, Path]:
    """float32.onnx, and int8.onnx as exported with the elu3 islands and with the float island (see the docstring)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from export import onnx as ex
    from export.onnx_qdq import float_island
    from export.lowering import FORMAT_DEFAULTS

    class Reader(ex._Reader, CalibrationDataReader):
        pass

    def int8(lowering: str, island: bool, path: Path) -> Path:
        saved = FORMAT_DEFAULTS[("onnx", "int8")]
        FORMAT_DEFAULTS[("onnx", "int8")] = lowering
        try:
            pre = ex._preprocessed(job, "int8")
        finally:
            FORMAT_DEFAULTS[("onnx", "int8")] = saved
        skip = float_island(onnx.load(str(pre))) if island else []
        quantize_static(str(pre), str(path), Reader(job.calib()), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        per_channel=job.cfg.per_channel, nodes_to_exclude=skip)
        return path

    import onnx
    ex.float32(job, tmp / "float32.onnx")
    return {"float32.onnx, for reference": tmp / "float32.onnx",
            "elu3, every op quantized (before)": int8("elu3", False, tmp / "elu3.onnx"),
            "naive, activation in float (now)": int8("naive", True, tmp / "island.onnx")}


def main() -> None:
    ap = Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--runs", type=int, default=3000)
    ap.add_argument("--json")
    a = ap.parse_args()
    import onnx

    from runtime.backends.onnxrt import OnnxBackend
    from runtime.profile import time_interleaved
    from runtime.provenance import provenance
    run = open_run(a.run)
    model = load_model(run.model_path)
    splits = load_splits(run)
    xv = to_float(splits.x_val)
    ref = np.concatenate([model(xv[i:i + 500], training=False).numpy() for i in range(0, len(xv), 500)])
    rows, calls = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        job = Job(ExportConfig(run=a.run), run, model, splits, tmp)
        for name, path in build(job, tmp).items():
            b = OnnxBackend.load(path, threads=1)  # the bench's session (runtime.backends)
            p = b.run(xv, 500)  # NCHW transpose by the backend, from the model's input shape
            b.set_batch(1)
            one = b.prepare(xv[:1])
            calls.append(lambda b=b, one=one: b.infer(one))
            g = onnx.load(str(path)).graph
            rows.append({"model": name, "nodes": len(g.node),
                         "val_accuracy": float(np.mean(p.argmax(1) == splits.y_val)),
                         "keras_val_accuracy": float(np.mean(ref.argmax(1) == splits.y_val)),
                         "val_agreement": float(np.mean(p.argmax(1) == ref.argmax(1))),
                         "max_abs_dp": float(np.abs(p - ref).max()), "int8_arith": b.int8_arith})
        for r, t in zip(rows, time_interleaved(calls, a.runs)):
            r["p50_ms"] = t * 1e3
    print(f"# {a.run}, validation split ({len(xv)} images), Keras val accuracy {rows[0]['keras_val_accuracy']:.4f}")
    print("| int8.onnx | nodes | val accuracy | val agreement | max abs dp | p50 ms |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['nodes']} | {r['val_accuracy']:.4f} | {r['val_agreement']:.4f} "
              f"| {r['max_abs_dp']:.3f} | {r['p50_ms']:.3f} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"provenance": provenance(), "run": a.run, "runs": a.runs,
                                            "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
