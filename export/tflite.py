"""TFLite: converters for each mode, and reading a converted file back (I/O, ops, predictions).

Every converter takes the lowered model for its mode (export/lowering.py: TanhExp as builtin
ops) and writes one .tflite file; what the manifest says about the file is read back from the
file by `describe`, never from the converter settings.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from export import opcheck, parity
from export.errors import ExportFailed
from export.run import io_description
from runtime.backends import NORMALIZATION

SUFFIX = ".tflite"


def _converter(model):
    import tensorflow as tf
    return tf, tf.lite.TFLiteConverter.from_keras_model(model)


def _representative(images: np.ndarray):
    # one image per step: the batch dimension of the traced model is dynamic, but the
    # calibrator's statistics are defined per example
    def gen():
        for i in range(len(images)):
            yield [images[i:i + 1]]
    return gen


def _full_int8(tf, conv, calib: np.ndarray) -> None:
    """Integer-only: int8 in and out, builtin int8 kernels only (what MCUs and NPUs run)."""
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _representative(calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8


def float32(job, out: Path) -> dict:
    _, conv = _converter(job.lowered("float32", "tflite"))
    Path(out).write_bytes(_convert(conv))
    return {"lowering": job.lowering("float32", "tflite")}


def float16(job, out: Path) -> dict:
    tf, conv = _converter(job.lowered("float16", "tflite"))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]  # weights stored as float16, math in float32
    Path(out).write_bytes(_convert(conv))
    return {"lowering": job.lowering("float16", "tflite")}


def dynamic(job, out: Path) -> dict:
    tf, conv = _converter(job.lowered("dynamic", "tflite"))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]  # no dataset: int8 weights, float activations
    Path(out).write_bytes(_convert(conv))
    return {"lowering": job.lowering("dynamic", "tflite")}


def int8(job, out: Path) -> dict:
    from export.config import ranges_label
    pct, keep = job.cfg.tflite_calib_percentile, job.cfg.tflite_float_layers
    if pct is None and not keep:  # the converter's own one-step path: min/max ranges
        tf, conv = _converter(job.lowered("int8", "tflite"))
        _full_int8(tf, conv, job.calib())
        buf = _convert(conv)
    else:  # the same two halves, with ranges replaced or layers kept in float in between
        from export.tflite_ranges import calibrated, percentile_ranges, quantize
        from export.tflite_select import float_nodes
        calib = job.calib()
        cal = calibrated(job.lowered("int8", "tflite"), calib)
        if pct is not None:
            cal, _ = percentile_ranges(cal, calib, pct)
        nodes = float_nodes(cal, job.model, keep) if keep else None
        buf = compact_names(quantize(cal, float_nodes=nodes))
    Path(out).write_bytes(buf)
    return {"lowering": job.lowering("int8", "tflite"), "calibration": {**job.calibration_info(), "ranges": ranges_label(pct)},
            **({"float_layers": list(keep)} if keep else {})}


def qat(job, out: Path) -> dict:
    from export import qat as qat_mod
    qmodel, info = qat_mod.fine_tune_job(job)
    Path(out).write_bytes(qat_mod.to_tflite_int8(qmodel, job.calib()))
    return {"lowering": job.lowering("qat", "tflite"), "calibration": job.calibration_info(), "qat": info}


def convert_int8(model, calib: np.ndarray) -> bytes:
    """Full-integer conversion of any Keras model (used by QAT and by tests)."""
    tf, conv = _converter(model)
    _full_int8(tf, conv, calib)
    return _convert(conv)


def _convert(conv) -> bytes:
    return compact_names(convert_quietly(conv))


def convert_quietly(conv) -> bytes:
    """conv.convert(), names as the converter gave them (export/tflite_ranges.py and
    tflite_select.py match layers by them)."""
    import warnings
    with warnings.catch_warnings():
        # "Statistics for quantized inputs were expected": int8 input stats come from the
        # representative dataset here, so the warning is noise in every int8 conversion
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        return conv.convert()


def compact_names(buf: bytes) -> bytes:
    """The converter names a fused tensor after every TF op folded into it, joined by ';'
    ('m/conv1/BiasAdd;m/conv1/Conv2D;m/conv1/BiasAdd/ReadVariableOp1'): debug text that is ~3 %
    of a 42k-parameter int8 file. Keep the first name (the layer stays recognisable; a clash
    gets a numeric suffix). Ops, weights, quantization and I/O (names without ';') are untouched."""
    from tensorflow.lite.tools import flatbuffer_utils as fu
    model = fu.read_model_from_bytearray(bytearray(buf))
    changed = False
    for graph in model.subgraphs:
        taken = {t.name for t in graph.tensors if b";" not in t.name}
        for t in graph.tensors:
            if b";" not in t.name:
                continue
            base = name = t.name.split(b";", 1)[0]
            k = 1
            while name in taken:
                name, k = base + b"_%d" % k, k + 1
            taken.add(name)
            t.name, changed = name, True
    return bytes(fu.convert_object_to_bytearray(model)) if changed else buf


# --- reading a converted file back -------------------------------------------------------

def open_model(path: Path, normalization=NORMALIZATION):
    """The file loaded as a device loads it (runtime.backends.litert). Parity runs one thread
    with LiteRT's default XNNPACK delegate, which are the bench's defaults too, so
    `python -m runtime.bench` on the same CPU reproduces the manifest's figures."""
    from runtime.backends import get_backend
    return get_backend("tflite").load(path, threads=1, normalization=normalization, xnnpack=True)


def ops(path: Path) -> list[str]:
    return opcheck.tflite_ops(Path(path).read_bytes())


_VALIDATE = ("import sys; from ai_edge_litert.interpreter import Interpreter; "
             "Interpreter(model_path=sys.argv[1]).allocate_tensors()")


def validate(path: Path) -> None:
    """The runtime must accept it: load and allocate with the interpreter the device uses.
    In a child process, because LiteRT can crash on a model its verifier accepts (an op
    wired to the wrong tensor: docs/faults-fuzz.md); that must fail the check, not the export."""
    import signal
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-c", _VALIDATE, str(path)], capture_output=True, text=True,
                       errors="replace", stdin=subprocess.DEVNULL, timeout=600)
    if r.returncode:
        lines = [ln.strip() for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("INFO:")]
        if r.returncode < 0:
            try:
                why = f"it crashed ({signal.Signals(-r.returncode).name})"
            except ValueError:
                why = f"it crashed (signal {-r.returncode})"
        else:
            why = lines[-1] if lines else f"exit {r.returncode}"
        raise ExportFailed(f"LiteRT cannot load the converted model: {why}")


def describe(path: Path) -> dict:
    backend = open_model(path)
    try:
        return io_description(backend)
    finally:
        backend.close()


def predict(path: Path, images: np.ndarray, batch: int = 500, normalization=NORMALIZATION,
            outputs: str = "probabilities") -> tuple[np.ndarray, int]:
    """(probabilities, images per call) for uint8 NHWC images; int8 I/O is (de)quantized with
    the scale and zero point read from the model itself (runtime.backends)."""
    return parity.predict(open_model(path, normalization), images, batch, outputs)
