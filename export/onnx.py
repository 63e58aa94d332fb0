"""ONNX: tf2onnx for float32, ONNX Runtime's quantizer for dynamic and static int8 (QDQ).

Layout: the graph takes NCHW (`inputs_as_nchw`), ONNX's native convolution layout, so tf2onnx's
transpose optimizer removes every NHWC<->NCHW pair around the convolutions. The one Transpose
it must keep sits before Flatten (Keras flattens in HWC order); `fold_flatten_transpose`
removes it by permuting the rows of the following Dense weights instead, so the exported
float graph has no Transpose at all.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from export import opcheck, parity
from export.config import ONNX_ACTIVATIONS, ranges_label
from export.onnx_qdq import INT8_GRAPHS, optimized_ops
from export.run import io_description
from runtime.backends import NORMALIZATION

SUFFIX = ".onnx"
INPUT_NAME = "image"


def _onnx():
    import onnx
    return onnx


# --- graph passes ------------------------------------------------------------------------

def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return list(a.ints) if a.ints else a.i
    return default


def fold_flatten_transpose(model):
    """Transpose(NCHW->NHWC) -> Reshape(N, C*H*W) -> MatMul(W): reshape NCHW directly and
    reorder W's rows to match (row h*W*C + w*C + c moves to c*H*W + h*W + w). Exact."""
    onnx = _onnx()
    from onnx import numpy_helper
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.graph.value_info) + list(inferred.graph.input)}
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    users: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    folded = 0
    for t in list(g.node):
        if t.op_type != "Transpose" or _attr(t, "perm") != [0, 2, 3, 1]:
            continue
        shape = shapes.get(t.input[0])
        after = users.get(t.output[0], [])
        if not shape or len(shape) != 4 or None in shape[1:] or len(after) != 1 or after[0].op_type != "Reshape":
            continue
        reshape = after[0]
        nxt = users.get(reshape.output[0], [])
        if len(nxt) != 1 or nxt[0].op_type != "MatMul" or nxt[0].input[0] != reshape.output[0]:
            continue
        wname = nxt[0].input[1]
        c, h, w = shape[1:]
        target = inits.get(reshape.input[1])
        if wname not in inits or len(users.get(wname, [])) != 1 or target is None:
            continue
        tgt = numpy_helper.to_array(target)
        weights = numpy_helper.to_array(inits[wname])
        if tgt.shape != (2,) or tgt[1] != c * h * w or weights.shape[0] != c * h * w:
            continue
        weights = weights.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(c * h * w, -1)
        inits[wname].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(weights), wname))
        reshape.input[0] = t.input[0]
        g.node.remove(t)
        folded += 1
    return folded


def tidy(model):
    """Smaller and plainer files: short tensor names (quantized graphs otherwise spend a
    quarter of their bytes on names), no value_info or doc strings, a named batch dimension,
    and only the opset imports the nodes use (ORT's pre-processing adds a dozen)."""
    g = model.graph
    if any(a.g.node or a.graphs for n in g.node for a in n.attribute):
        return model  # subgraphs reference outer names; leave such graphs alone
    keep = {v.name for v in list(g.input) + list(g.output)}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        return names.setdefault(name, f"t{len(names)}")

    # Names in order of first use by the nodes, initializers sorted by them: ORT's quantizers
    # emit initializers (and name some) in set order, which follows Python's per-process string
    # hashing; this makes two exports of one model byte-identical (docs/faults-kill.md).
    for i, n in enumerate(g.node):
        n.input[:] = [short(x) for x in n.input]
        n.output[:] = [short(x) for x in n.output]
        n.name = f"{n.op_type}_{i}"
        n.doc_string = ""
    for init in g.initializer:
        init.name = short(init.name)
    rank = {v: i for i, v in enumerate(names.values())}
    g.initializer.sort(key=lambda init: rank.get(init.name, -1))
    del g.value_info[:]
    g.doc_string = model.doc_string = ""
    for v in list(g.input) + list(g.output):
        dim0 = v.type.tensor_type.shape.dim[0]
        if dim0.HasField("dim_param"):
            dim0.dim_param = "batch"
    used = {n.domain for n in g.node} | {""}
    for imp in list(model.opset_import):
        if imp.domain not in used:
            model.opset_import.remove(imp)
    return model


# --- converters --------------------------------------------------------------------------

# Static int8 keeps Keras's NCHW->NHWC Transpose before Flatten: ONNX Runtime runs QLinearConv
# channels-last and moves its own layout transposes through the elementwise ops to cancel that
# one, so the whole int8 graph runs NHWC with NhwcMaxPool. Folded, a Transpose back to NCHW is
# left, and where it lands before TanhExp's ops (x has two consumers) the last MaxPool runs on
# NCHW integers, ORT's slow path (experiments/int8_lowering_runtimes.py).
FOLD_FLATTEN = {"float32": True, "dynamic": True, "int8": False}


def _float_model(job, mode: str):
    """tf2onnx of the model lowered for `mode`, NCHW input, transposes folded where FOLD_FLATTEN says."""
    fold = FOLD_FLATTEN.get(mode, True)

    def make():
        import tensorflow as tf
        import tf2onnx
        model = job.lowered(mode, "onnx")
        spec = [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=INPUT_NAME)]
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=job.cfg.opset,
                                              inputs_as_nchw=[INPUT_NAME])
        if fold:
            fold_flatten_transpose(proto)
        return tidy(proto)
    from export.lowering import choose
    return job.memo(("onnx-float", choose(mode, "onnx"), job.cfg.opset, fold), make)


def _extras(job, mode: str) -> dict:
    return {"lowering": job.lowering(mode, "onnx"), "opset": job.cfg.opset}


def float32(job, out: Path) -> dict:
    _onnx().save(_float_model(job, "float32"), str(out))
    return _extras(job, "float32")


def _preprocessed(job, mode: str) -> Path:
    """ORT's recommended pre-quantization pass (shape inference, constant folding, fusions)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process
    src, dst = job.workdir / f"{mode}-float.onnx", job.workdir / f"{mode}-pre.onnx"
    _onnx().save(_float_model(job, mode), str(src))
    quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
    return dst


def _finish(path: Path, out: Path) -> None:
    onnx = _onnx()
    onnx.save(tidy(onnx.load(str(path))), str(out))


def dynamic(job, out: Path) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    tmp = job.workdir / "dynamic-q.onnx"
    quantize_dynamic(str(_preprocessed(job, "dynamic")), str(tmp), weight_type=QuantType.QInt8)
    _finish(tmp, out)
    return _extras(job, "dynamic")


class _Reader:
    """CalibrationDataReader over the training-split sample, NCHW like the graph input."""

    def __init__(self, images: np.ndarray, batch: int = 50):
        self.x = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
        self.batch, self.i = batch, 0

    def get_next(self):
        if self.i >= len(self.x):
            return None
        self.i += self.batch
        return {INPUT_NAME: self.x[self.i - self.batch:self.i]}

    def rewind(self):
        self.i = 0


def int8(job, out: Path) -> dict:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class TrainSampleReader(_Reader, CalibrationDataReader):
        pass

    reader = TrainSampleReader(job.calib())
    tmp = job.workdir / "int8-q.onnx"
    pct = job.cfg.onnx_calib_percentile
    # Percentile ranges clip the rare extreme activations that stretch a min/max grid: with the
    # residual adds of ResNet-8 that moved validation agreement from 96.6 to 98.0 % (ReLU, seed 0);
    # on the seed net it changed nothing beyond noise, so min/max stays the default.
    ranges = {} if pct is None else dict(calibrate_method=CalibrationMethod.Percentile,
                                         extra_options={"CalibPercentile": pct})
    act = getattr(QuantType, ONNX_ACTIVATIONS[job.cfg.onnx_activations])
    from export.lowering import LOWERINGS
    pre = _preprocessed(job, "int8")
    lowering = job.lowering("int8", "onnx")
    strategy = LOWERINGS[lowering].onnx_int8 if lowering else "quantize"
    graph = INT8_GRAPHS[strategy]
    skip = graph.exclude(_onnx().load(str(pre)))
    quantize_static(str(pre), str(tmp), reader, quant_format=QuantFormat.QDQ,
                    activation_type=act, weight_type=QuantType.QInt8,
                    per_channel=job.cfg.per_channel, nodes_to_exclude=skip, **ranges)
    q = _onnx().load(str(tmp))
    graph.finish(q)
    _onnx().save(tidy(q), str(out))
    return {**_extras(job, "int8"), "calibration": {**job.calibration_info(),
                                                    "ranges": ranges_label(pct)},
            "quantization_scheme": {"format": "QDQ", "activations": job.cfg.onnx_activations, "weights": "int8",
                                    "per_channel": job.cfg.per_channel,
                                    "graph": strategy},
            "optimized_graph": optimized(out)}


def optimized(path: Path) -> dict:
    """What ONNX Runtime runs on this machine once it has fused the QDQ graph (op counts, and
    the ops left in float), with the session options the device's bench uses."""
    import onnxruntime as ort

    from runtime.backends.onnxrt import session_options
    so, _ = session_options(threads=1)
    return {**optimized_ops(path, so), "onnxruntime": ort.__version__}


# --- reading a converted file back -------------------------------------------------------

def open_model(path: Path, normalization=NORMALIZATION):
    """The file loaded by the device's backend (runtime.backends.onnxrt), unoptimized, with
    ONNX Runtime's default thread count. Parity describes the file, not the export machine's
    kernels: the unoptimized graph runs each QuantizeLinear/DequantizeLinear as ONNX defines it.
    Optimized, an x86 CPU without VNNI fuses them into saturating int8 kernels (see onnxrt.py)
    and the manifest would record that machine's error as the model's; ORT's exact-kernel switch
    is no way out either, as it fails to build some valid graphs (TanhExp with int8 activations)."""
    from runtime.backends import get_backend
    return get_backend("onnx").load(path, threads=None, normalization=normalization, optimize=False)


def ops(path: Path) -> list[str]:
    return opcheck.onnx_ops(_onnx().load(str(path)))


def validate(path: Path) -> None:
    onnx = _onnx()
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    open_model(path).close()


def describe(path: Path) -> dict:
    backend = open_model(path)
    try:
        # graph I/O of a QDQ model stays float; Q/DQ parameters live on nodes inside
        return io_description(backend)
    finally:
        backend.close()


def predict(path: Path, images: np.ndarray, batch: int = 500, normalization=NORMALIZATION,
            outputs: str = "probabilities") -> tuple[np.ndarray, int]:
    """(probabilities, images per call) for uint8 NHWC images, transposed to the graph's NCHW
    by the backend, which reads the layout from the model's input shape."""
    return parity.predict(open_model(path, normalization), images, batch, outputs)
