"""TFLite int8 activation ranges: the calibrator's min/max, or percentiles of the same values.

Why: TFLite's calibrator records each tensor's minimum and maximum over the calibration
images, so the single most extreme value of 500 images sets that tensor's int8 step for every
input. On one ResNet-8 (eight int8 activations, two residual adds) five calibration samples
gave validation drops of 0.24-0.90 pt, and more images made it worse (a bigger sample finds
bigger extremes). Percentile 99.99 over 2,000 images held it at 0.30 +- 0.10 pt, 0.21 pt on
test against min/max's 0.47 (docs/results.md). On the seed nets it gains TanhExp
0.7 pt of agreement and ReLU nothing , so min/max stays the default.
ONNX Runtime offers percentile ranges (`--onnx-calib-percentile`); TFLite's converter does
not, so this module does it through the converter's own two halves:

1. calibrate only (`_experimental_calibrate_only`): the float model, each tensor carrying the
   min/max the calibrator recorded;
2. run that float model over the same calibration images with every intermediate tensor kept,
   and for each recorded tensor (not the model's input and output, whose ranges are fixed by
   the pixels and the softmax) take the P-th percentile of its values as the new maximum and
   the (100-P)-th as the new minimum (widened to include 0, as int8 needs);
3. quantize (`mlir_quantize`), as the one-step conversion would have.

Steps 1 and 3 are the private converter entry points that tf.lite.experimental.
QuantizationDebugger drives. P = 100 gives back min/max exactly (tested), so the two paths
differ only by the ranges.
"""
from __future__ import annotations

import math

import numpy as np


def calibrated(model, calib: np.ndarray) -> bytes:
    """A float .tflite carrying per-tensor calibration min/max (export/tflite.py's int8 settings)."""
    import tensorflow as tf

    from export.tflite import _full_int8, convert_quietly
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    _full_int8(tf, conv, calib)
    conv._experimental_calibrate_only = True
    return convert_quietly(conv)


def quantize(cal: bytes, float_ops: list[str] | None = None, float_nodes: list[str] | None = None) -> bytes:
    """Full-integer model (int8 in and out) from a calibrated float model; ops of the types in
    `float_ops` and the nodes in `float_nodes` (export/tflite_select.py) stay in float."""
    import tensorflow as tf
    from tensorflow.lite.python.convert import mlir_quantize
    return mlir_quantize(cal, False, input_data_type=tf.int8, output_data_type=tf.int8,
                         denylisted_ops=float_ops or None, denylisted_nodes=float_nodes or None)


def recorded(cal: bytes) -> dict[int, tuple[float, float]]:
    """{tensor index: (min, max)} the calibrator recorded, minus the model's inputs and outputs."""
    from tensorflow.lite.tools import flatbuffer_utils as fu
    g = fu.read_model_from_bytearray(bytearray(cal)).subgraphs[0]
    io = set(g.inputs.tolist()) | set(g.outputs.tolist())
    out = {}
    for i, t in enumerate(g.tensors):
        q = t.quantization
        if i not in io and q is not None and q.min is not None and len(q.min) == 1:
            out[i] = (float(q.min[0]), float(q.max[0]))
    return out


def tails(cal: bytes, calib: np.ndarray, tensors: list[int], percentile: float, batch: int = 50) -> dict[int, tuple[float, float]]:
    """{tensor: (low, high)}: the k-th smallest and k-th largest value of each tensor over all
    calibration images, k = max(1, ceil(N (100 - P) / 100)) for N values. Exact, and light:
    only the k most extreme values per side are kept between batches."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    # no delegate: XNNPACK would own the intermediate tensors and they could not be read back
    it = Interpreter(model_content=cal, experimental_preserve_all_tensors=True,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    d = it.get_input_details()[0]
    b = min(batch, len(calib))
    it.resize_tensor_input(d["index"], [b, *d["shape"][1:]])
    it.allocate_tensors()
    per_image = {i: int(np.prod(it.tensor(i)().shape[1:])) for i in tensors}
    ks = {i: max(1, math.ceil(per_image[i] * len(calib) * (100.0 - percentile) / 100.0)) for i in tensors}
    lows = {i: np.empty(0, np.float32) for i in tensors}
    highs = {i: np.empty(0, np.float32) for i in tensors}
    for s in range(0, len(calib), b):
        chunk = calib[s:s + b]
        n = len(chunk)
        if n < b:  # the tail: pad with its own last image, and read only the first n rows
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], b - n, axis=0)])
        it.set_tensor(d["index"], chunk.astype(np.float32))
        it.invoke()
        for i in tensors:
            v = it.get_tensor(i)[:n].ravel()
            k = ks[i]
            lo = np.concatenate([lows[i], v])
            hi = np.concatenate([highs[i], v])
            lows[i] = np.partition(lo, k - 1)[:k] if len(lo) > k else lo
            highs[i] = np.partition(hi, len(hi) - k)[-k:] if len(hi) > k else hi
    return {i: (float(lows[i].max()), float(highs[i].min())) for i in tensors}


def set_ranges(cal: bytes, ranges: dict[int, tuple[float, float]]) -> bytes:
    """Overwrite the recorded min/max of the given tensors (each range widened to include 0)."""
    from tensorflow.lite.tools import flatbuffer_utils as fu
    model = fu.read_model_from_bytearray(bytearray(cal))
    tensors = model.subgraphs[0].tensors
    for i, (lo, hi) in ranges.items():
        q = tensors[i].quantization
        q.min = np.array([min(lo, 0.0)], np.float32)
        q.max = np.array([max(hi, 0.0)], np.float32)
    return bytes(fu.convert_object_to_bytearray(model))


def percentile_ranges(cal: bytes, calib: np.ndarray, percentile: float) -> tuple[bytes, dict]:
    """The calibrated model with percentile ranges, and a summary of how much they narrowed."""
    rec = recorded(cal)
    new = tails(cal, calib, sorted(rec), percentile)
    # a tensor the calibrator saw as constant (a dead channel's whole tensor) keeps its range
    new = {i: r for i, r in new.items() if r[1] > r[0]}
    widths = [(new[i][1] - new[i][0]) / (rec[i][1] - rec[i][0]) for i in new if rec[i][1] > rec[i][0]]
    info = {"ranges": f"percentile {percentile:g}", "tensors": len(new),
            "median_width_vs_minmax": round(float(np.median(widths)), 4) if widths else None}
    return set_ranges(cal, new), info

