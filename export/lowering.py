"""How TanhExp leaves Keras: the formula the exported graph computes, as builtin ops only.

Contract used by the exporters: `LOWERINGS[name](x)` is a function of plain TF ops that the
TFLite converter maps to builtins and tf2onnx to standard-domain ONNX ops; `lowered_copy(model,
name)` returns a clone of a trained model whose TanhExp layers compute that formula, with the
same weights. `choose(mode)` says which lowering each export mode uses.

The candidates that were measured and not chosen (other exponent bounds, sigmoid gates,
act->MaxPool fusions) live in experiments/lowering_candidates.py; their figures are in
docs/lowering.md (`python -m experiments.lowering_bench`).

Why the int8 graph does not simply run the training formula:
* every int8 op rounds its output on a per-tensor grid fixed by calibration: EXP's spans
  [0, e^c] (step 0.079 for c = 3) while e^x is 0.05..1 on x in [-3, 0]; alone, that rounding in
  the second activation costs 2.8 % top-1 agreement (fake-quant simulation). A smaller c gives
  a finer grid (0.016 for c = 1.4) but:
* int8 MINIMUM/MAXIMUM keep their input's scale, so the converter gives the conv output feeding
  MINIMUM(x, c) the range of min(x, c): x saturates at c, and f(x) with it (the seed net's conv2
  reaches 7.5). With c = 3 that clips few values; with c = 1.4 agreement falls to 89 %.
  x - relu(x - c) ("sub") bounds the exponent without touching x's range.
* what no formula can change: the conv output x is quantized over [min, max] = [-16.5, 7.5]
  (ReLU's fused conv output: [0, 7]); quantizing only that tensor already costs 1-2 % agreement.

XNNPACK (LiteRT's default CPU delegate, 2.3) takes int8 CONV_2D, MAX_POOL_2D, TANH, LOGISTIC,
MUL, ADD, SUB (with fused RELU), CONCATENATION/SPLIT, FULLY_CONNECTED, and float
DEQUANTIZE/ELU/NEG/QUANTIZE islands; not int8 EXP, MINIMUM, MAXIMUM, standalone RELU, SOFTMAX
(the bench's single-op check). Refused ops run on reference kernels between delegate partitions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import tensorflow as tf
import tf_keras as keras

from train.activations import EXP_BOUND, TanhExp


# --- elementwise formulas -------------------------------------------------------------------

def _formula(c: float | None = EXP_BOUND, minop: str = "min", gate: str = "exp", norm: bool = False,
             floor: float | None = None, hinge: tuple[float, float] | None = None):
    """x * tanh(e^min(x, c)) and int8-minded variants of it.

    minop "min": MINIMUM(x, c). In int8 MINIMUM/MAXIMUM must keep their input's scale, so the
      converter gives the *conv output* the range of min(x, c): x itself saturates at c
      (measured: 150-step errors above x = 3 with c = 3). "sub": min(x, c) = x - relu(x - c),
      SUB+fused RELU and SUB, own scales, both taken by XNNPACK.
    gate "exp": tanh(exp(m)); "sigmoid": tanh(z) = 2 sigmoid(2z) - 1 (LOGISTIC's int8 grid is
      1/256, TANH's 1/128, but two more ops round); "elu": e^m = 1 + elu(m) for m <= 0, so
      tanh(1 + elu(m)) is exact for x <= 0 and uses no EXP (the converter keeps ELU in float
      between DEQUANTIZE/QUANTIZE, which XNNPACK takes): for x > 0 it is tanh(1 + x) instead of
      tanh(e^x), |error| <= 0.027; `hinge` (a, k) adds k*relu(x - a) to fix that (<= 0.0035).
    norm: gate / tanh(e^c), exactly 1 for x >= c.
    floor L: x = MAXIMUM(x, -L) first. Same-scale rule again, used on purpose: the conv output's
      int8 range becomes [-L, max] instead of [min, max] (min is about -16 in the seed net's conv2),
      a finer grid where f is not flat; f changes by <= L*tanh(e^-L) below -L."""
    def f(x):
        if floor is not None:
            x = tf.maximum(x, tf.cast(-floor, x.dtype))
        if c is None:
            m = x
        else:
            cc = tf.cast(c, x.dtype)
            m = tf.minimum(x, cc) if minop == "min" else x - tf.nn.relu(x - cc)
        if gate == "elu":
            z = 1.0 + tf.nn.elu(m)
            if hinge:
                z = z + hinge[1] * tf.nn.relu(x - hinge[0])
            g = tf.math.tanh(z)
        elif gate == "sigmoid":
            g = 2.0 * tf.math.sigmoid(2.0 * tf.math.exp(m)) - 1.0
        else:
            g = tf.math.tanh(tf.math.exp(m))
        if norm:
            g = g * tf.cast(1.0 / math.tanh(math.exp(c)), x.dtype)
        return x * g
    return f


def _float64(c=None, gate="exp", norm=False, floor=None, hinge=None):
    """The same formula in numpy float64, for the documented error bounds."""
    def f(x):
        x = np.maximum(x, -floor) if floor is not None else x
        m = x if c is None else np.minimum(x, c)
        if gate == "elu":
            z = np.exp(np.minimum(m, 0)) + np.maximum(m, 0) + (hinge[1] * np.maximum(x - hinge[0], 0) if hinge else 0)
            g = np.tanh(z)
        else:
            g = np.tanh(np.exp(m))
        return x * g / (math.tanh(math.exp(c)) if norm else 1.0)
    return f


def _bound_error(ref64=None, **kw) -> float:
    """sup over x of |formula(x) - x*tanh(e^x)| / max(1, |x|), float64 on a fine grid (beyond
    |x| = 40 the ratio no longer changes: tanh(e^x) is 1, and x*tanh(e^x) is 0 below)."""
    x = np.linspace(-40, 40, 160001)
    with np.errstate(over="ignore"):
        f = ref64 or _float64(**kw)
        sup = np.max(np.abs(f(x) - x * np.tanh(np.exp(x))) / np.maximum(1.0, np.abs(x)))
    return float(sup * 1.01)  # margin for the grid's step (0.0005) missing the peak


def _lrsgate(a, alpha, t, b):
    """x * sigmoid(a * leaky_relu(x - t, alpha) + b): one sigmoid with two slopes, a steep one
    right of t and a gentle one left of it, the shape of tanh(e^x) (an e^x tail on the left, a
    double-exponential approach to 1 on the right).

    Why: ONNX Runtime runs DequantizeLinear -> LeakyRelu/Sigmoid -> QuantizeLinear as
    QLinearLeakyRelu/QLinearSigmoid, 256-entry tables of the int8 codes, and the scalars t, a, b
    only change a table's input grid: a*h + b read from h's codes is h's codes under scale a*s and
    zero point z - b/(a*s). `export.onnx_qdq.fold_affine` folds them into the DequantizeLinear
    nodes, so each TanhExp is two table lookups and one QLinearMul: no Exp, Tanh or float op
    between the integer convolutions."""
    def f(x):
        h = tf.nn.leaky_relu(x - tf.cast(t, x.dtype), alpha=alpha)
        return x * tf.math.sigmoid(h * tf.cast(a, x.dtype) + tf.cast(b, x.dtype))
    return f


def _lrsgate64(a, alpha, t, b):
    def f(x):
        u = x - t
        return x * 0.5 * (1.0 + np.tanh((a * np.where(u > 0, u, alpha * u) + b) / 2.0))
    return f


@dataclass(frozen=True)
class Lowering:
    fn: Callable            # the elementwise formula, plain TF ops
    exact: bool             # the training function in float32 (its bound error is 0)
    doc: str
    # documented bound of the formula: |fn(x) - x*tanh(e^x)| <= max_error * max(1, |x|) beyond
    # float32 rounding
    max_error: float = 0.0
    # how export/onnx.py builds the static int8 graph (export.onnx_qdq.INT8_GRAPHS): "quantize"
    # every op, "float-island" (the formula's ops left in float), "table" (sigmoid terms folded
    # into ONNX Runtime's table lookups)
    onnx_int8: str = "quantize"
    # fitted per model: `family(*params)` is the formula with one layer's constants, fitted at
    # export by `fit(samples of that layer's inputs) -> (params, rms)` (export/gate_fit.py);
    # `fn` (the shipped constants) is what a layer without its own constants computes
    family: Callable | None = None
    fit: Callable | None = None

    def __call__(self, x):
        return self.fn(x)


def _add(name: str, doc: str, **kw) -> Lowering:
    err = _bound_error(**{k: v for k, v in kw.items() if k != "minop"})
    # 1 - tanh(e^3) = 4e-18: bounded3 is the textbook f in float64
    LOWERINGS[name] = Lowering(_formula(**kw), err < 1e-9, doc, 0.0 if err < 1e-9 else err)
    return LOWERINGS[name]


LOWERINGS: dict[str, Lowering] = {}
# exact: the training function in float32
_add("bounded3", "the training formula x*tanh(exp(min(x,3))): MINIMUM, EXP, TANH, MUL")
_add("naive", "x*tanh(exp(x)): EXP's int8 range is unbounded (and float16 overflows above x=11)", c=None)
# approximate (|error| <= 0.027 max(1, |x|)), for int8: no EXP or MINIMUM, every op in XNNPACK
_add("elu3", "x*tanh(1 + elu(x - relu(x-3))): no EXP/MINIMUM, all ops in XNNPACK", minop="sub", gate="elu")
LOWERINGS["naive"] = replace(LOWERINGS["naive"], onnx_int8="float-island")


# For ONNX int8 (FORMAT_DEFAULTS below). Constants (a, alpha, t, b): least squares of x*gate(x)
# against x*tanh(e^x) over the seed TanhExp net's conv outputs on the exporter's calibration sample
# (500 training images), `python -m experiments.sgate_fit` (docs/results/sgate-fit.json);
# sup |error| / max(1, |x|) 0.0195.
LRSGATE = (2.26906, 0.5431, -0.62914, -0.15497)
LOWERINGS["lrsgate"] = Lowering(
    _lrsgate(*LRSGATE), False,
    "x*sigmoid(2.26906 leaky_relu(x + 0.62914, 0.5431) - 0.15497): two table lookups and a QLinearMul "
    "in ONNX Runtime, every op an integer kernel", _bound_error(_lrsgate64(*LRSGATE)), onnx_int8="table")


def _fit_lrsgate(samples):
    from export.gate_fit import fit_lrsgate
    return fit_lrsgate(samples, LRSGATE)


# The same formula with each TanhExp layer's constants fitted to that layer's inputs on the
# calibration sample, at export: the shipped constants are the seed net's, and do not carry over
# to other networks (export/gate_fit.py).
LOWERINGS["lrsgate_fit"] = replace(
    LOWERINGS["lrsgate"], doc="lrsgate with (a, alpha, t, b) least-squares fitted per layer to its inputs on the "
    "calibration sample", family=_lrsgate, fit=_fit_lrsgate)

# export mode -> lowering (measured: docs/lowering.md, docs/results/lowering.json).
# Float modes MUST compute the training function (exports are checked against Keras at 1e-5),
# so they keep the training formula op for op. int8 and qat: "elu3", the only candidate that
# meets the latency target (1.13x ReLU int8: every op but SOFTMAX stays in XNNPACK) and the
# accuracy-drop target, and it has better top-1 agreement than the training formula (96.3 vs
# 95.5 % on val, 96.8 vs 95.2 % on test). Higher agreement exists only at ~1.9x ReLU's latency
# (sub1.4_floor4, 97.2 %). QAT fine-tunes through the same formula, absorbing its float error.
DEFAULTS = {"float32": "bounded3", "float16": "bounded3", "dynamic": "bounded3",
            "int8": "elu3", "qat": "elu3"}


# Where one format does better with another exact formula. ONNX Runtime runs each elementwise
# op as its own kernel; in float32 *inference* the textbook formula is exact too (exp
# overflows to inf, tanh(inf) = 1, x * 1 = x; the bound exists for gradients and for int8
# ranges), and dropping the Min measured 121.7 vs 128.3 us per image (ReLU 87.9 us), max
# |dp| 0.0 between the two graphs (docs/results.md).
#
# ONNX int8: standard ONNX has no quantized Exp, Elu or Tanh; `elu3` ran as three float islands,
# then the exact formula as one (`naive`, strategy "float-island"). `lrsgate` uses only ops ONNX
# Runtime runs as integer kernels (strategy "table", export/onnx_qdq.py). Chosen on the
# validation split, AVX-512 EPYC: agreement 96.50 vs 96.32 %, 0.76x vs 0.86x its own float32,
# 1.53x vs 1.73x ReLU int8 (experiments/int8_lowering_runtimes.py, docs/lowering.md). For LiteRT
# it is no faster than `elu3` (1.12x ReLU both) and agrees less (95.94 vs 96.22 %). The fixed
# constants are the seed net's and do not carry over: on MobileNetV2-0.35's validation split the
# float model agrees 92.26 % with them and 97.52 % with constants fitted per layer at export
# (`lrsgate_fit`, the default since 2026-12-08; seed net 98.42 against 98.74 %;
# experiments/gate_fit_val.py). Same ops, so the same latency.
FORMAT_DEFAULTS = {("onnx", "float32"): "naive", ("onnx", "int8"): "lrsgate_fit"}


def choose(mode: str, fmt: str | None = None) -> str:
    if mode not in DEFAULTS:
        raise ValueError(f"no lowering for export mode {mode!r}; modes: {sorted(DEFAULTS)}")
    return FORMAT_DEFAULTS.get((fmt, mode), DEFAULTS[mode])


# --- layers ---------------------------------------------------------------------------------

@keras.utils.register_keras_serializable(package="edgecnn")
class LoweredTanhExp(keras.layers.Layer):
    """TanhExp computed by LOWERINGS[lowering] (elementwise part only)."""

    def __init__(self, lowering: str = "bounded3", params=None, **kwargs):
        super().__init__(**kwargs)
        if lowering not in LOWERINGS:
            raise ValueError(f"unknown lowering {lowering!r}; choose from {sorted(LOWERINGS)}")
        if params is not None and LOWERINGS[lowering].family is None:
            raise ValueError(f"lowering {lowering!r} takes no per-layer constants")
        self.lowering, self.params = lowering, (None if params is None else [float(v) for v in params])
        self._fn = LOWERINGS[lowering] if params is None else LOWERINGS[lowering].family(*self.params)

    def call(self, x):
        return self._fn(x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "lowering": self.lowering, "params": self.params}


# --- model rewrite --------------------------------------------------------------------------

def lowered_copy(model: keras.Model, lowering: str, clone_layer=None, params: dict | None = None) -> keras.Model:
    """A clone of `model` whose TanhExp layers compute `lowering`; weights copied. ReLU models come
    back as clones; nested models are lowered recursively. `clone_layer(layer)` may return a
    replacement for any layer first (None: the default), which is how experiments fuse layers.
    params: {TanhExp layer name: constants} for a fitted lowering (`fit_params`)."""
    if lowering not in LOWERINGS:
        raise ValueError(f"unknown lowering {lowering!r}; choose from {sorted(LOWERINGS)}")
    params = params or {}

    def clone(layer):
        if isinstance(layer, keras.Model):
            return lowered_copy(layer, lowering, clone_layer, params)
        new = clone_layer(layer) if clone_layer else None
        if new is not None:
            return new
        if isinstance(layer, TanhExp):
            return LoweredTanhExp(lowering, params.get(layer.name), name=layer.name, dtype=layer.dtype_policy)
        return layer.__class__.from_config(layer.get_config())

    out = keras.models.clone_model(model, clone_function=clone)
    out.set_weights(model.get_weights())
    return out


def fit_params(model: keras.Model, lowering: str, images: np.ndarray) -> dict:
    """{TanhExp layer name: {"params": constants, "rms": error on its inputs}} for a fitted
    lowering, from float model inputs `images` (the calibration sample); {} for the others.
    Only the model's own top-level TanhExp layers are fitted; nested ones keep the shipped constants."""
    low = LOWERINGS[lowering]
    acts = [layer for layer in model.layers if isinstance(layer, TanhExp)]
    if low.fit is None or not acts:
        return {}
    from export.gate_fit import layer_inputs
    out = {}
    for name, v in layer_inputs(model, images, acts, n=20_000).items():
        p, rms = low.fit(v)
        out[name] = {"params": [round(q, 6) for q in p], "rms": round(rms, 6)}
    return out


def has_tanhexp(model: keras.Model) -> bool:
    return any(isinstance(layer, TanhExp) or (isinstance(layer, keras.Model) and has_tanhexp(layer))
               for layer in model.layers)
