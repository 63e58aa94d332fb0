"""Model builders, one registry. Every builder takes (act, num_classes, input_shape) and returns
an uncompiled tf_keras Model whose activations are separate layers, so export can find them
and tensorflow-model-optimization can annotate them."""
from __future__ import annotations

import tf_keras as keras

from train.activations import ACTIVATIONS, register_activation_name

L = keras.layers


def seed(act: str, num_classes: int = 10, input_shape=(32, 32, 3), final_dtype=None,
         make_act=None, batch_norm: bool = False) -> keras.Model:
    """The seed experiment's network, exactly: 42,442 parameters with 10 classes.

    Conv 32 3x3 -> act -> MaxPool -> Conv 64 3x3 -> act -> MaxPool -> Flatten -> Dense softmax.
    `final_dtype="float32"` keeps the softmax in float32 under mixed precision (same weights);
    `make_act` overrides the activation layer factory (the speed benchmark's seed baseline).
    `batch_norm=True` (the strong recipe) puts a BatchNormalization right after each conv, whose
    bias it makes redundant: 42,730 parameters, and after export, where BN folds into the conv,
    the same graph as the seed's."""
    make = make_act or ACTIVATIONS[act]

    def conv(x, filters, i):
        x = L.Conv2D(filters, 3, use_bias=not batch_norm, name=f"conv{i}")(x)
        return L.BatchNormalization(name=f"bn{i}")(x) if batch_norm else x

    x = inp = keras.Input(input_shape, name="image")
    x = make(name="act1")(conv(x, 32, 1))
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = make(name="act2")(conv(x, 64, 2))
    x = L.MaxPooling2D(2, name="pool2")(x)
    x = L.Flatten(name="flatten")(x)
    out = L.Dense(num_classes, activation="softmax", dtype=final_dtype, name="probs")(x)
    return keras.Model(inp, out, name=f"seed_{act}")


def resnet8(act: str, num_classes: int = 10, input_shape=(32, 32, 3), final_dtype=None,
            make_act=None, weight_decay: float = 1e-4, batch_norm: bool = True) -> keras.Model:
    """MLPerf Tiny's image-classification reference (ResNet-8 for CIFAR-10): three residual
    stages of 16/32/64 filters with batch norm, ~78k parameters and ~12.5 M multiply-adds.
    Batch norm sits right after each convolution so that export can fold it into the conv.
    `batch_norm=False` drops it (not the reference: a BN-free twin for checking the folding)."""
    make = make_act or ACTIVATIONS[act]
    reg = keras.regularizers.l2(weight_decay) if weight_decay else None
    n = iter(range(1, 100))

    def conv_bn(x, filters, stride=1, kernel=3):
        i = next(n)
        x = L.Conv2D(filters, kernel, strides=stride, padding="same", kernel_initializer="he_normal",
                     kernel_regularizer=reg, name=f"conv{i}")(x)
        return L.BatchNormalization(name=f"bn{i}")(x) if batch_norm else x

    x = inp = keras.Input(input_shape, name="image")
    x = make(name="act0")(conv_bn(x, 16))
    for stage, (filters, stride) in enumerate(((16, 1), (32, 2), (64, 2)), 1):
        y = make(name=f"act{stage}a")(conv_bn(x, filters, stride))
        y = conv_bn(y, filters)
        if stride != 1 or x.shape[-1] != filters:
            x = L.Conv2D(filters, 1, strides=stride, kernel_initializer="he_normal", kernel_regularizer=reg,
                         name=f"shortcut{stage}")(x)
        x = make(name=f"act{stage}b")(L.Add(name=f"add{stage}")([x, y]))
    x = L.AveragePooling2D(pool_size=x.shape[1], name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    out = L.Dense(num_classes, activation="softmax", kernel_initializer="he_normal", dtype=final_dtype,
                  name="probs")(x)
    return keras.Model(inp, out, name=f"resnet8_{act}")


ARCHS = {"seed": seed, "resnet8": resnet8}


def build(arch: str, act: str, **kwargs) -> keras.Model:
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHS)}")
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; choose from {sorted(ACTIVATIONS)}")
    register_activation_name()
    return ARCHS[arch](act, **kwargs)
