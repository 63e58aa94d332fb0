"""How TanhExp leaves Keras: the formula the exported graph computes, as builtin ops only.

Contract used by the exporters: `LOWERINGS[name](x)` is a function of plain TF ops that the
TFLite converter maps to builtins and tf2onnx to standard-domain ONNX ops; `lowered_copy(model,
name)` returns a clone of a trained model whose TanhExp layers compute that formula, with the
same weights. `choose(mode)` says which lowering each export mode uses.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from train.activations import EXP_BOUND, TanhExp

LOWERINGS = {
    # The textbook formula: exp's range is unbounded, which wrecks int8 calibration.
    "naive": lambda x: x * tf.math.tanh(tf.math.exp(x)),
    # The training formula: identical in float32 (tanh(e^x) == 1 for x > ~2.3); MINIMUM, EXP, TANH, MUL.
    "bounded3": lambda x: x * tf.math.tanh(tf.math.exp(tf.minimum(x, EXP_BOUND))),
}

# export mode -> lowering
DEFAULTS = {"float32": "bounded3", "float16": "bounded3", "dynamic": "bounded3",
            "int8": "bounded3", "qat": "bounded3"}


def choose(mode: str) -> str:
    return DEFAULTS[mode]


class LoweredTanhExp(keras.layers.Layer):
    def __init__(self, lowering: str = "bounded3", **kwargs):
        super().__init__(**kwargs)
        self.lowering = lowering

    def call(self, x):
        return LOWERINGS[self.lowering](x)

    def get_config(self):
        return {**super().get_config(), "lowering": self.lowering}


def lowered_copy(model: keras.Model, lowering: str) -> keras.Model:
    """A clone of `model` whose TanhExp layers use `lowering`; weights copied. ReLU models come back as clones."""
    if lowering not in LOWERINGS:
        raise ValueError(f"unknown lowering {lowering!r}; choose from {sorted(LOWERINGS)}")

    def clone(layer):
        if isinstance(layer, TanhExp):
            return LoweredTanhExp(lowering, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    out = keras.models.clone_model(model, clone_function=clone)
    out.set_weights(model.get_weights())
    return out


def has_tanhexp(model: keras.Model) -> bool:
    return any(isinstance(layer, TanhExp) for layer in model.layers)
