"""The one table of formats and modes. Adding a mode is one entry here plus its converter.

FORMATS[format][mode] is a converter `fn(job, path) -> dict`: it writes the artifact to
`path` (a temporary name) and returns extra manifest fields. READERS[format] is the module
that reads a converted file back: `ops(path)`, `validate(path)`, `describe(path)`,
`predict(path, uint8_images, batch)`. Importing this module imports no TensorFlow.
"""
from __future__ import annotations

from export import onnx, tflite

FORMATS = {
    "tflite": {
        "float32": tflite.float32,
        "float16": tflite.float16,
        "dynamic": tflite.dynamic,
        "int8": tflite.int8,
        "qat": tflite.qat,
    },
    "onnx": {
        "float32": onnx.float32,
        "dynamic": onnx.dynamic,
        "int8": onnx.int8,
    },
}

READERS = {"tflite": tflite, "onnx": onnx}

# Artifacts whose output for one image depends on the other images in the same call: ONNX
# dynamic quantization (DynamicQuantizeLinear) takes one activation scale over the whole
# batch tensor. Their parity is measured one image per call, as a device serves them; the
# manifest records the batch in parity.batch so a benchmark can reproduce it.
BATCH_DEPENDENT = {("onnx", "dynamic")}


def file_name(fmt: str, mode: str) -> str:
    """An artifact's file name is its mode: float32.tflite, int8.onnx, ..."""
    return f"{mode}{READERS[fmt].SUFFIX}"
