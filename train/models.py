"""Model builders, one registry. Every builder takes (act, num_classes, input_shape) and returns
an uncompiled tf_keras Model whose activations are separate layers, so export can find them
and tensorflow-model-optimization can annotate them."""
from __future__ import annotations

import tf_keras as keras

from train.activations import ACTIVATIONS, register_activation_name

L = keras.layers


def seed(act: str, num_classes: int = 10, input_shape=(32, 32, 3), final_dtype=None,
         make_act=None) -> keras.Model:
    """The seed experiment's network, exactly: 42,442 parameters with 10 classes.

    Conv 32 3x3 -> act -> MaxPool -> Conv 64 3x3 -> act -> MaxPool -> Flatten -> Dense softmax.
    `final_dtype="float32"` keeps the softmax in float32 under mixed precision (same weights);
    `make_act` overrides the activation layer factory (the speed benchmark's seed baseline)."""
    make = make_act or ACTIVATIONS[act]
    x = inp = keras.Input(input_shape, name="image")
    x = L.Conv2D(32, 3, name="conv1")(x)
    x = make(name="act1")(x)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = L.Conv2D(64, 3, name="conv2")(x)
    x = make(name="act2")(x)
    x = L.MaxPooling2D(2, name="pool2")(x)
    x = L.Flatten(name="flatten")(x)
    out = L.Dense(num_classes, activation="softmax", dtype=final_dtype, name="probs")(x)
    return keras.Model(inp, out, name=f"seed_{act}")


ARCHS = {"seed": seed}


def build(arch: str, act: str, **kwargs) -> keras.Model:
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHS)}")
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; choose from {sorted(ACTIVATIONS)}")
    register_activation_name()
    return ARCHS[arch](act, **kwargs)
