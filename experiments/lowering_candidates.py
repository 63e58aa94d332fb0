"""The TanhExp lowerings that were measured and not chosen, for experiments/lowering_bench.py.

The exporter ships four formulas (export/lowering.py: bounded3, naive, elu3, lrsgate). The candidates
here shaped that choice (docs/lowering.md, docs/results/lowering.json): other exponent bounds
(a finer int8 EXP grid), a sigmoid gate, a hinge correction of elu3, a floor on the conv
output's range, and act->MaxPool fusions.

Pooled candidates ("pool_*") fuse an act -> MaxPool2D pair into one layer that pools FIRST and
applies the formula to the 4x smaller pooled tensor. TanhExp is quasi-convex (decreasing on
(-inf, -0.6], increasing after), so over any window max_i f(x_i) = max(f(max x), f(min x)).
"pool_exact*"/"pool_cat*" compute both terms (exact up to float rounding); "pool_max*" only
f(max x), wrong on all-negative windows (common: conv2 of the seed net reaches -16; it cost 7 %
top-1 agreement even in float32). A pair that cannot be fused stays elementwise.

`register()` adds them to export.lowering.LOWERINGS (explicitly, never at import);
`lowered_copy(model, name)` understands the pooled ones too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tensorflow as tf
import tf_keras as keras

from export import lowering as L
from train.activations import TanhExp

HINGE = (0.25, 0.8)  # least max-error fit of tanh(1 + x + k relu(x - a)) to tanh(e^x) on x > 0
# f(M) instead of max(f(M), f(m)) on an all-negative window: both lie in [min f, 0], min f = -0.3532
POOL_MAX_ERROR = 0.3533

# name -> (pool, doc, formula arguments). pool: "none" | "max" (f(maxpool x)) | "exact"
# (max(f(maxpool x), f(minpool x))) | "cat" (= "exact" as one f over concat(maxpool, minpool),
# max as a + relu(b - a), which XNNPACK takes in int8 where it refuses MAXIMUM).
CANDIDATES: dict[str, tuple[str, str, dict]] = {
    "sigmoid3": ("none", "bounded3 with tanh(z) = 2*sigmoid(2z)-1", dict(gate="sigmoid")),
    "sub3": ("none", "bounded3 with min(x,3) = x - relu(x-3): the conv output keeps its range", dict(minop="sub")),
    **{f"bounded{c:g}": ("none", f"x*tanh(exp(min(x,{c:g}))): finer EXP grid; MINIMUM clips x at {c:g}", dict(c=c))
       for c in (0.7, 1.0, 1.4, 2.0)},
    **{f"norm{c:g}": ("none", f"bounded{c:g} with the gate divided by tanh(e^{c:g})", dict(c=c, norm=True))
       for c in (1.0, 1.4)},
    **{f"sub{c:g}": ("none", f"x*tanh(exp(x - relu(x-{c:g}))): EXP grid e^{c:g}/255, x unclipped", dict(c=c, minop="sub"))
       for c in (1.0, 1.4, 2.0)},
    **{f"sub1.4_floor{f:g}": ("none", f"sub1.4 on max(x,-{f:g}): conv output grid [-{f:g}, max]",
                              dict(c=1.4, minop="sub", floor=f)) for f in (4.0, 6.0)},
    "eluh3": ("none", f"elu3 + {HINGE[1]}*relu(x-{HINGE[0]}) inside tanh: closer for x > 0, all in XNNPACK",
              dict(minop="sub", gate="elu", hinge=HINGE)),
    "pool_exact3": ("exact", "act->MaxPool as max(f(maxpool x), f(-maxpool(-x))), f = bounded3", {}),
    "pool_exact_sub3": ("exact", "pool_exact3 with f = sub3", dict(minop="sub")),
    "pool_max3": ("max", "act->MaxPool as f(maxpool x), f = bounded3: wrong on all-negative windows", {}),
    "pool_sub1.4": ("max", "pool_max3 with f = sub1.4", dict(c=1.4, minop="sub")),
    "pool_exact_sub1.4": ("exact", "pool_exact3 with f = sub1.4", dict(c=1.4, minop="sub")),
    "pool_exact_eluh3": ("exact", "pool_exact3 with f = eluh3", dict(minop="sub", gate="elu", hinge=HINGE)),
    # measured no faster than elementwise in int8 (the min branch costs a full-size MUL by -1)
    "pool_cat_sub3": ("cat", "pool_exact_sub3 as one chain over concat(max, min), max via SUB/RELU/ADD", dict(minop="sub")),
    "pool_cat_sub1.4": ("cat", "pool_cat_sub3 with c=1.4", dict(c=1.4, minop="sub")),
    "pool_cat_eluh3": ("cat", "pool_cat_sub3 with f = eluh3: no op outside XNNPACK but SOFTMAX",
                       dict(minop="sub", gate="elu", hinge=HINGE)),
}


def _sgate(terms):
    """x * sum_k c_k * sigmoid(a_k * x + b_k). In ONNX int8 each term is one QLinearSigmoid table
    (a, b folded into its DequantizeLinear, c into the one after it), summed by QLinearAdd."""
    def f(x):
        g = None
        for c, a, b in terms:
            t = tf.math.sigmoid(x * tf.cast(a, x.dtype) + tf.cast(b, x.dtype))
            t = t * tf.cast(c, x.dtype) if c != 1.0 else t
            g = t if g is None else g + t
        return x * g
    return f


def _sgate64(terms):
    def f(x):
        return x * sum(c * 0.5 * (1.0 + np.tanh((a * x + b) / 2.0)) for c, a, b in terms)
    return f


# The ONNX int8 table candidates (export/onnx_qdq.py) not shipped; constants from
# `python -m experiments.sgate_fit` (docs/results/sgate-fit.json): "minimax" fits the worst case
# on [-40, 40], "data" the seed net's conv outputs (as the shipped `lrsgate` does).
TABLE_CANDIDATES = {
    "sgate1": ("x*sigmoid(1.73692x + 1.2675), minimax: one table and a QLinearMul",
               _sgate(((1.0, 1.73692, 1.2675),)), _sgate64(((1.0, 1.73692, 1.2675),))),
    "sgate2": ("x*(c sigmoid(a1 x + b1) + (1 - c) sigmoid(a2 x + b2)), data fit: two tables, QLinearAdd, QLinearMul",
               _sgate(((0.36767, 1.34418, 2.0924), (0.63233, 2.59889, 0.87882))),
               _sgate64(((0.36767, 1.34418, 2.0924), (0.63233, 2.59889, 0.87882)))),
    "lrsgate_minimax": ("lrsgate with the minimax constants (2.58164, 0.50397, -0.55748, -0.00097)",
                        L._lrsgate(2.58164, 0.50397, -0.55748, -0.00097), L._lrsgate64(2.58164, 0.50397, -0.55748, -0.00097)),
}


@dataclass(frozen=True)
class PooledLowering(L.Lowering):
    pool: str = "none"


def register() -> None:
    """Add every candidate to export.lowering.LOWERINGS (idempotent)."""
    for name, (pool, doc, kw) in CANDIDATES.items():
        if name in L.LOWERINGS:
            continue
        low = L._add(name, doc, **kw)
        exact = low.exact and pool != "max"
        L.LOWERINGS[name] = PooledLowering(low.fn, exact, doc, low.max_error, pool=pool)
    for name, (doc, fn, ref64) in TABLE_CANDIDATES.items():
        if name not in L.LOWERINGS:
            L.LOWERINGS[name] = L.Lowering(fn, False, doc, L._bound_error(ref64), onnx_int8="table")


def pool_of(name: str) -> str:
    return getattr(L.LOWERINGS[name], "pool", "none")


@keras.utils.register_keras_serializable(package="edgecnn")
class LoweredTanhExpPool(L.LoweredTanhExp):
    """act -> MaxPooling2D fused: pool first, then the formula on the pooled tensor.

    A subclass of LoweredTanhExp on purpose: export/qat.py gives every LoweredTanhExp an
    output fake-quant, which is exactly where the int8 graph requantizes."""

    def __init__(self, lowering: str = "pool_max3", pool_size=(2, 2), strides=None, padding="valid",
                 data_format=None, **kwargs):
        register()  # a reloaded model needs its lowering back
        super().__init__(lowering, **kwargs)
        if pool_of(lowering) not in ("max", "exact", "cat"):
            raise ValueError(f"lowering {lowering!r} is elementwise; use LoweredTanhExp")
        self.pool_cfg = dict(pool_size=pool_size, strides=strides, padding=padding, data_format=data_format)
        self._pool = keras.layers.MaxPooling2D(**self.pool_cfg, dtype=self.dtype_policy)

    def call(self, x):
        low, pool = L.LOWERINGS[self.lowering], pool_of(self.lowering)
        hi = self._pool(x)
        if pool == "max":
            return low(hi)
        # min-pool as -maxpool(-x); "* -1" not NEG: int8 NEG has no kernel (float island)
        lo = self._pool(x * -1.0) * -1.0
        if pool == "exact":
            return tf.maximum(low(hi), low(lo))
        axis = 1 if self.pool_cfg["data_format"] == "channels_first" else -1
        a, b = tf.split(low(tf.concat([hi, lo], axis)), 2, axis)
        return a + tf.nn.relu(b - a)  # = max(a, b) up to one rounding of b - a

    def compute_output_shape(self, input_shape):
        return self._pool.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), **self.pool_cfg}


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
    """export.lowering.lowered_copy, plus the pooled candidates: each fusable act->MaxPooling2D
    pair becomes one LoweredTanhExpPool (named after the pool; the act's slot becomes a no-op
    linear Activation, keeping the wiring of any functional/Sequential model); unfusable TanhExp
    layers get the elementwise formula."""
    register()
    if lowering not in L.LOWERINGS or pool_of(lowering) == "none":
        return L.lowered_copy(model, lowering)
    pairs = {}

    def collect(m):
        pairs.update(_fusable_pairs(m))
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                collect(layer)
    collect(model)
    act_of_pool = {id(pool): act for act, pool in pairs.values()}

    def fuse(layer):
        if id(layer) in pairs:
            return keras.layers.Activation("linear", name=layer.name, dtype=layer.dtype_policy)
        if id(layer) in act_of_pool:
            c = layer.get_config()
            return LoweredTanhExpPool(lowering, c["pool_size"], c["strides"], c["padding"], c["data_format"],
                                      name=layer.name, dtype=act_of_pool[id(layer)].dtype_policy)
        return None

    return L.lowered_copy(model, lowering, clone_layer=fuse)
