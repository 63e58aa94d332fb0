"""How TanhExp leaves Keras: the formula the exported graph computes, as builtin ops only.

Contract used by the exporters: `LOWERINGS[name](x)` is a function of plain TF ops that the
TFLite converter maps to builtins and tf2onnx to standard-domain ONNX ops; `lowered_copy(model,
name)` returns a clone of a trained model whose TanhExp layers compute that formula, with the
same weights. `choose(mode)` says which lowering each export mode uses.

Two kinds of lowering (measurements and the reasoning: docs/lowering.md, `python -m
export.lowering_bench`):

* elementwise: TanhExp -> a formula of MINIMUM / EXP / TANH / MUL (etc.), same graph shape.
* pooled ("pool_*"): an act -> MaxPool2D pair becomes one layer that pools FIRST and applies
  the formula to the 4x smaller pooled tensor. TanhExp is quasi-convex (decreasing on
  (-inf, -0.6], increasing after), so over any window max_i f(x_i) = max(f(max x), f(min x)),
  also in float32 (rounding is monotone, exp/tanh are monotone). "pool_exact*" computes both
  terms; "pool_max*" only f(max x), which differs only when a whole window is negative
  (error < 0.36 there, in [-0.36, 0]). Where the pair cannot be fused (the activation feeds
  something else too, another pooling type, shared layers) the elementwise formula is used.

Why the int8 graph does not simply run the training formula: every int8 op rounds its own
output onto a per-tensor grid fixed by calibration. EXP's output grid spans [0, e^c] (c the
exponent bound), so with c = 3 its step is 0.079 while e^x for x in [-3, 0] is 0.05..1, and
the conv output feeding MINIMUM/EXP spans the whole pre-activation range. Pooling first
shrinks that range (window maxima are rarely very negative) and quarters the work; see
DEFAULTS for what won.

XNNPACK (LiteRT's default CPU delegate, 2.3) takes int8 CONV_2D, MAX_POOL_2D, TANH, LOGISTIC,
MUL, ADD, SUB (with fused RELU), LEAKY_RELU, FULLY_CONNECTED, and float DEQUANTIZE/ELU/NEG/
QUANTIZE islands; it does NOT take int8 EXP, MINIMUM, MAXIMUM, standalone RELU or SOFTMAX
(measured: export/lowering_bench.py --xnnpack). Each op it refuses runs on the reference
kernels and splits the delegated graph, which is where the int8 TanhExp time goes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf
import tf_keras as keras

from train.activations import EXP_BOUND, TanhExp


# --- elementwise formulas -------------------------------------------------------------------

def _bounded(c: float | None, minop: str = "min", gate: str = "tanh", norm: bool = False):
    """x * gate(exp(min(x, c))). minop "sub": min(x, c) = x - relu(x - c) (SUB with fused RELU,
    which XNNPACK takes in int8, unlike MINIMUM). gate "sigmoid": tanh(z) = 2 sigmoid(2z) - 1
    (int8 LOGISTIC has a 1/256 output step, TANH 1/128). norm: divide the gate by tanh(e^c)
    so it reaches exactly 1 at x >= c (a smaller c then only changes f below c)."""
    def f(x):
        if c is None:
            m = x
        else:
            cc = tf.cast(c, x.dtype)
            m = tf.minimum(x, cc) if minop == "min" else x - tf.nn.relu(x - cc)
        e = tf.math.exp(m)
        g = 2.0 * tf.math.sigmoid(2.0 * e) - 1.0 if gate == "sigmoid" else tf.math.tanh(e)
        if norm:
            g = g * tf.cast(1.0 / math.tanh(math.exp(c)), x.dtype)
        return x * g
    return f


def _elu_gate(c: float):
    """x * tanh(e^c * (1 + elu(-relu(c - x)))): for m = min(x, c) - c <= 0, e^m = elu(m) + 1.
    No EXP and no MINIMUM: SUB+RELU, ELU (kept float by the converter, inside a DEQUANTIZE/
    QUANTIZE pair XNNPACK takes), ADD, MUL, TANH, MUL; the whole net becomes one partition."""
    def f(x):
        cc = tf.cast(c, x.dtype)
        u = tf.nn.elu(-tf.nn.relu(cc - x))
        return x * tf.math.tanh(tf.cast(math.exp(c), x.dtype) * (u + 1.0))
    return f


def _bound_error(c: float, norm: bool = False) -> float:
    """sup over x of |x*gate_c(x) - x*tanh(e^x)| / max(1, |x|), in float64 on a fine grid (the
    ratio is constant beyond x = 20, where tanh(e^x) = 1)."""
    x = np.linspace(-40, 40, 800001)
    g = np.tanh(np.exp(np.minimum(x, c))) / (math.tanh(math.exp(c)) if norm else 1.0)
    return float(np.max(np.abs(x * g - x * np.tanh(np.exp(x))) / np.maximum(1.0, np.abs(x))))


# f(M) instead of max(f(M), f(m)) on an all-negative window: both lie in [min f, 0], min f = -0.3532
POOL_MAX_ERROR = 0.3533


@dataclass(frozen=True)
class Lowering:
    fn: Callable            # the elementwise formula, plain TF ops
    pool: str               # "none" | "max" (f(maxpool x)) | "exact" (max(f(maxpool x), f(minpool x)))
    exact: bool             # the training function in float32 (max |dp| <= 1e-5 vs Keras)
    doc: str
    # documented bound of the formula: |fn(x) - x*tanh(e^x)| <= max_error * max(1, |x|) beyond
    # float32 rounding; pool "max" adds up to POOL_MAX_ERROR (absolute) on all-negative windows
    max_error: float = 0.0

    def __call__(self, x):
        return self.fn(x)


_TRAIN = _bounded(EXP_BOUND)

LOWERINGS: dict[str, Lowering] = {
    "naive": Lowering(_bounded(None), "none", True,
                      "x*tanh(exp(x)) as is: EXP's int8 output range is unbounded, ruining its grid "
                      "(and float16 overflows above x=11)"),
    "bounded3": Lowering(_TRAIN, "none", True,
                         "the training formula x*tanh(exp(min(x,3))): MINIMUM, EXP, TANH, MUL"),
    "sub3": Lowering(_bounded(EXP_BOUND, minop="sub"), "none", True,
                     "bounded3 with min(x,3) = x - relu(x-3): SUBs XNNPACK takes, but EXP still splits"),
    "sigmoid3": Lowering(_bounded(EXP_BOUND, gate="sigmoid"), "none", True,
                         "bounded3 with tanh(z) = 2*sigmoid(2z)-1: finer LOGISTIC grid, two more roundings"),
    "pool_exact3": Lowering(_TRAIN, "exact", True,
                            "act->MaxPool as max(f(maxpool x), f(-maxpool(-x))), f = bounded3: exact"),
    "pool_max3": Lowering(_TRAIN, "max", False,
                          "act->MaxPool as f(maxpool x), f = bounded3: differs only on all-negative windows"),
    "pool_elu3": Lowering(_elu_gate(EXP_BOUND), "max", False,
                          "pool_max3 with e^x from ELU (no EXP, no MINIMUM): one XNNPACK partition",
                          1e-6),  # expm1-then-add rounding, not the same float ops as training
}
# int8-only candidates with a smaller exponent bound: c < 2.3 changes f itself (tanh(e^c) < 1)
for _c in (0.7, 1.0, 1.4, 2.0):
    _n = f"{_c:g}"
    LOWERINGS[f"bounded{_n}"] = Lowering(_bounded(_c), "none", False,
                                         f"x*tanh(exp(min(x,{_n}))): finer EXP grid, f changes above x={_n}",
                                         _bound_error(_c))
    LOWERINGS[f"norm{_n}"] = Lowering(_bounded(_c, norm=True), "none", False,
                                      f"bounded{_n} with the gate divided by tanh(e^{_n}) (exact above x={_n})",
                                      _bound_error(_c, norm=True))
    LOWERINGS[f"pool_max{_n}"] = Lowering(_bounded(_c), "max", False, f"pool_max3 with c={_n}", _bound_error(_c))
for _c in (1.0, 1.4, 2.0, 3.0):
    _n, _exact = f"{_c:g}", _c == EXP_BOUND
    _e = 0.0 if _exact else _bound_error(_c)
    if _c != EXP_BOUND:
        LOWERINGS[f"sub{_n}"] = Lowering(_bounded(_c, minop="sub"), "none", False, f"sub3 with c={_n}", _e)
    LOWERINGS[f"pool_sub{_n}"] = Lowering(_bounded(_c, minop="sub"), "max", False, f"pool_max{_n} with the SUB bound", _e)
    LOWERINGS[f"pool_exact_sub{_n}"] = Lowering(_bounded(_c, minop="sub"), "exact", _exact,
                                                f"pool_exact3 with c={_n} and the SUB bound", _e)

# export mode -> lowering. Float modes MUST compute the training function (exports are checked
# against Keras at 1e-5), so they keep the training formula op for op. int8/qat: see docs/lowering.md.
DEFAULTS = {"float32": "bounded3", "float16": "bounded3", "dynamic": "bounded3",
            "int8": "bounded3", "qat": "bounded3"}


def choose(mode: str) -> str:
    if mode not in DEFAULTS:
        raise ValueError(f"no lowering for export mode {mode!r}; modes: {sorted(DEFAULTS)}")
    return DEFAULTS[mode]


# --- layers ---------------------------------------------------------------------------------

@keras.utils.register_keras_serializable(package="edgecnn")
class LoweredTanhExp(keras.layers.Layer):
    """TanhExp computed by LOWERINGS[lowering] (elementwise part only)."""

    def __init__(self, lowering: str = "bounded3", **kwargs):
        super().__init__(**kwargs)
        if lowering not in LOWERINGS:
            raise ValueError(f"unknown lowering {lowering!r}; choose from {sorted(LOWERINGS)}")
        self.lowering = lowering

    def call(self, x):
        return LOWERINGS[self.lowering](x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "lowering": self.lowering}


@keras.utils.register_keras_serializable(package="edgecnn")
class LoweredTanhExpPool(LoweredTanhExp):
    """act -> MaxPooling2D fused: pool first, then the formula on the pooled tensor.

    A subclass of LoweredTanhExp on purpose: export/qat.py gives every LoweredTanhExp an
    output fake-quant, which is exactly where the int8 graph requantizes."""

    def __init__(self, lowering: str = "pool_max3", pool_size=(2, 2), strides=None, padding="valid",
                 data_format=None, **kwargs):
        super().__init__(lowering, **kwargs)
        if LOWERINGS[lowering].pool not in ("max", "exact"):
            raise ValueError(f"lowering {lowering!r} is elementwise; use LoweredTanhExp")
        self.pool_cfg = dict(pool_size=pool_size, strides=strides, padding=padding, data_format=data_format)
        self._pool = keras.layers.MaxPooling2D(**self.pool_cfg, dtype=self.dtype_policy)

    def call(self, x):
        low = LOWERINGS[self.lowering]
        hi = low(self._pool(x))
        if low.pool == "max":
            return hi
        # min-pool as -maxpool(-x); "* -1" not NEG: int8 NEG has no kernel (float island)
        lo = low(self._pool(x * -1.0) * -1.0)
        return tf.maximum(hi, lo)

    def compute_output_shape(self, input_shape):
        return self._pool.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), **self.pool_cfg}


# --- model rewrite --------------------------------------------------------------------------

def _fusable_pairs(model: keras.Model) -> dict:
    """{id(TanhExp layer): (it, its MaxPooling2D)} for pairs where the activation's only use is that
    pool and neither layer is shared; everything else stays elementwise."""
    outputs = {id(t) for t in model.outputs}
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, TanhExp) or len(layer._inbound_nodes) != 1:
            continue
        users = layer._outbound_nodes
        if len(users) != 1 or id(layer.output) in outputs:
            continue
        pool = users[0].outbound_layer
        if type(pool) is keras.layers.MaxPooling2D and len(pool._inbound_nodes) == 1:
            pairs[id(layer)] = (layer, pool)
    return pairs


def lowered_copy(model: keras.Model, lowering: str) -> keras.Model:
    """A clone of `model` whose TanhExp layers use `lowering`; weights copied. ReLU models come
    back as clones. Pooled lowerings fuse each act->MaxPooling2D pair into one LoweredTanhExpPool
    (named after the pool; the act's slot becomes a no-op linear Activation, keeping the graph
    wiring intact for any functional/Sequential model); unfusable TanhExp layers get the
    elementwise formula. Nested models are lowered recursively."""
    if lowering not in LOWERINGS:
        raise ValueError(f"unknown lowering {lowering!r}; choose from {sorted(LOWERINGS)}")
    low = LOWERINGS[lowering]
    pairs = _fusable_pairs(model) if low.pool != "none" else {}   # id(act) -> (act, pool)
    act_of_pool = {id(pool): act for act, pool in pairs.values()}

    def clone(layer):
        if isinstance(layer, keras.Model):
            return lowered_copy(layer, lowering)
        if id(layer) in pairs:
            return keras.layers.Activation("linear", name=layer.name, dtype=layer.dtype_policy)
        if id(layer) in act_of_pool:
            c = layer.get_config()
            return LoweredTanhExpPool(lowering, c["pool_size"], c["strides"], c["padding"], c["data_format"],
                                      name=layer.name, dtype=act_of_pool[id(layer)].dtype_policy)
        if isinstance(layer, TanhExp):
            return LoweredTanhExp(lowering, name=layer.name, dtype=layer.dtype_policy)
        return layer.__class__.from_config(layer.get_config())

    out = keras.models.clone_model(model, clone_function=clone)
    out.set_weights(model.get_weights())
    return out


def has_tanhexp(model: keras.Model) -> bool:
    return any(isinstance(layer, TanhExp) or (isinstance(layer, keras.Model) and has_tanhexp(layer))
               for layer in model.layers)
