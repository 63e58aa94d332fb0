"""Export's ONNX parity describes the file, not the export machine's int8 kernels: on an x86
CPU without VNNI, ONNX Runtime's default session saturates int8 sums (runtime/backends/onnxrt.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tests.runtime.rt_helpers import QDQ_Y_SCALE, qdq_conv_reference, saturating_qdq_conv

from export.onnx import predict


def test_parity_predictions_are_the_models(tmp_path):
    w = saturating_qdq_conv(tmp_path / "conv_int8.onnx")
    images = np.random.default_rng(1).integers(0, 256, (8, 8, 8, 3), dtype=np.uint8)
    images[0] = 255
    got, _ = predict(tmp_path / "conv_int8.onnx", images, batch=1)
    diff = np.abs(got.reshape(len(images), -1) - qdq_conv_reference(images, w))
    assert diff.max() <= QDQ_Y_SCALE + 1e-5 and np.mean(diff > 1e-5) < 0.02
