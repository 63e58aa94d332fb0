"""export.tflite.compact_names: shorter tensor names, the same model."""
from __future__ import annotations

import numpy as np
import pytest

import tensorflow as tf

from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from export.tflite import _full_int8, compact_names  # noqa: E402
from train.models import build  # noqa: E402


def _run(buf: bytes, x: np.ndarray) -> np.ndarray:
    it = Interpreter(model_content=buf)
    d, o = it.get_input_details()[0], it.get_output_details()[0]
    it.resize_tensor_input(d["index"], x.shape)
    it.allocate_tensors()
    it.set_tensor(d["index"], x)
    it.invoke()
    return it.get_tensor(o["index"])


def test_compact_names_keeps_the_model_and_shortens_fused_names():
    rng = np.random.default_rng(0)
    calib = rng.random((20, 32, 32, 3), dtype=np.float32)
    conv = tf.lite.TFLiteConverter.from_keras_model(build("seed", "relu"))
    _full_int8(tf, conv, calib)
    raw = conv.convert()                      # the converter's own file, names untouched
    short = compact_names(raw)
    names = [t["name"] for t in Interpreter(model_content=short).get_tensor_details()]
    assert any(";" in t["name"] for t in Interpreter(model_content=raw).get_tensor_details())
    assert not [n for n in names if ";" in n] and len(set(names)) == len(names)
    assert len(short) < len(raw)
    for key in ("name", "dtype", "quantization"):
        for get in ("get_input_details", "get_output_details"):
            a = getattr(Interpreter(model_content=raw), get)()[0][key]
            b = getattr(Interpreter(model_content=short), get)()[0][key]
            assert a == b, (get, key)
    x = (rng.random((8, 32, 32, 3)) * 255 - 128).astype(np.int8)
    np.testing.assert_array_equal(_run(raw, x), _run(short, x))
    assert compact_names(short) == short      # nothing left to do: the bytes come back as they were
