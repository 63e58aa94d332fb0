"""Seeded mutators that turn a real exported model into a hostile file.

Each mutator is `fn(src, dest, rng) -> str`: it reads the model at `src` (a `.tflite` or
`.onnx` file), writes a damaged variant at `dest` (a file, a directory or a symlink loop)
and returns a short description of what it did, so that a failing case can be read and
replayed (`python -m tools.faults.fuzz --case N` rebuilds the same bytes from the same seed).

Byte-level mutators know nothing about the format (bit flips, truncation, spliced or
inserted bytes); `structural` edits one field of the parsed model (a tensor's shape, a
buffer offset, an op's input index, an ONNX initializer's dims...) and re-serializes it,
which gets past the parsers' own checks and reaches the native loaders' shape and memory
planning, where crashes live. `wrong_shape`, `wrong_dtype` and `wrong_format` write a
perfectly valid model that is simply not the one the manifest names.

The ONNX side needs the `onnx` package and the TFLite side the flatbuffer schema that
ai-edge-litert ships; neither imports TensorFlow.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

Mutator = Callable[[Path, Path, np.random.Generator], str]
MUTATORS: dict[str, Mutator] = {}


def mutator(name: str):
    def register(fn: Mutator) -> Mutator:
        MUTATORS[name] = fn
        return fn
    return register


def fmt_of(path: Path) -> str:
    return "onnx" if Path(path).suffix.lower() == ".onnx" else "tflite"


def _ri(rng, lo: int, hi: int) -> int:
    """An int in [lo, hi] (inclusive), as a Python int."""
    return int(rng.integers(lo, hi + 1))


def _differ(data: bytes, orig: bytes, rng) -> bytes:
    # a hostile file must differ from the original, else the sha256 check has nothing to catch
    if data != orig:
        return data
    if not data:
        return b"\x00"
    b = bytearray(data)
    b[_ri(rng, 0, len(b) - 1)] ^= 0xFF
    return bytes(b)


def _write(dest: Path, data: bytes) -> None:
    dest.write_bytes(data)


# --- byte-level ---------------------------------------------------------------------------

@mutator("bitflip")
def bitflip(src, dest, rng):
    b = bytearray(Path(src).read_bytes())
    k = _ri(rng, 1, 16)
    where = rng.integers(0, len(b), k)
    for pos, bit in zip(where, rng.integers(0, 8, k)):
        b[int(pos)] ^= 1 << int(bit)
    _write(dest, _differ(bytes(b), Path(src).read_bytes(), rng))
    return f"flipped {k} bit(s), first at byte {int(where.min())}"


@mutator("truncate")
def truncate(src, dest, rng):
    data = Path(src).read_bytes()
    # half the time keep only a header's worth: the loaders' first reads
    n = _ri(rng, 1, min(64, len(data) - 1)) if rng.random() < 0.5 else _ri(rng, 1, len(data) - 1)
    _write(dest, data[:n])
    return f"kept the first {n} of {len(data)} bytes"


@mutator("splice")
def splice(src, dest, rng):
    data = Path(src).read_bytes()
    n = _ri(rng, 1, 512)
    at = _ri(rng, 0, len(data) - 1)
    junk = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    if rng.random() < 0.5:
        out, how = data[:at] + junk + data[at + n:], "overwrote"
    else:
        out, how = data[:at] + junk + data[at:], "inserted"
    _write(dest, _differ(out, data, rng))
    return f"{how} {n} random bytes at {at}"


@mutator("duplicate")
def duplicate(src, dest, rng):
    data = Path(src).read_bytes()
    n = _ri(rng, 1, min(4096, len(data)))
    at = _ri(rng, 0, len(data) - n)
    to = _ri(rng, 0, len(data))
    _write(dest, _differ(data[:to] + data[at:at + n] + data[to:], data, rng))
    return f"copied bytes {at}:{at + n} to {to}"


@mutator("zero_region")
def zero_region(src, dest, rng):
    data = bytearray(Path(src).read_bytes())
    n = _ri(rng, 1, min(8192, len(data)))
    at = _ri(rng, 0, len(data) - n)
    data[at:at + n] = bytes(n)
    _write(dest, _differ(bytes(data), Path(src).read_bytes(), rng))
    return f"zeroed bytes {at}:{at + n}"


@mutator("garbage")
def garbage(src, dest, rng):
    """The format's magic in front of random bytes: gets past the cheapest checks."""
    data = Path(src).read_bytes()
    n = _ri(rng, 8, 4096)
    body = bytearray(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
    if fmt_of(src) == "tflite":
        body[4:8] = b"TFL3"
        body[0:4] = _ri(rng, 8, n - 1).to_bytes(4, "little")  # a root offset inside the file
        what = "'TFL3' header"
    else:
        body[:len(data[:16])] = data[:16]  # the model's own first protobuf fields
        what = "the model's first 16 bytes"
    _write(dest, bytes(body))
    return f"{what} + {n - 8} random bytes"


# --- the file system ----------------------------------------------------------------------

@mutator("empty")
def empty(src, dest, rng):
    _write(dest, b"")
    return "zero-length file"


@mutator("directory")
def directory(src, dest, rng):
    dest.mkdir()
    (dest / "model").write_bytes(Path(src).read_bytes()[:64])
    return "a directory where the file should be"


@mutator("symlink_loop")
def symlink_loop(src, dest, rng):
    other = dest.with_name(dest.name + ".loop")
    os.symlink(other.name, dest)
    os.symlink(dest.name, other)
    return "symlink loop: the file -> <file>.loop -> the file"


# --- valid models that are not the right one ----------------------------------------------

WRONG_SHAPES = ([1, 16, 16, 1], [1, 64, 64, 3], [1, 32, 32, 4], [1, 3, 32, 32], [1, 32, 32],
                [1, 3072], [1, 1, 1, 3])
WRONG_DTYPES = ("int32", "uint8", "int8", "int64", "float64", "int16", "bool")


@mutator("wrong_shape")
def wrong_shape(src, dest, rng):
    shape = WRONG_SHAPES[_ri(rng, 0, len(WRONG_SHAPES) - 1)]
    _write(dest, tiny_model(fmt_of(src), shape, "float32"))
    return f"valid {fmt_of(src)} model with input float32 {shape}"


@mutator("wrong_dtype")
def wrong_dtype(src, dest, rng):
    dtype = WRONG_DTYPES[_ri(rng, 0, len(WRONG_DTYPES) - 1)]
    _write(dest, tiny_model(fmt_of(src), [1, 32, 32, 3], dtype))
    return f"valid {fmt_of(src)} model with input {dtype} [1, 32, 32, 3]"


@mutator("wrong_format")
def wrong_format(src, dest, rng):
    other = "onnx" if fmt_of(src) == "tflite" else "tflite"
    _write(dest, tiny_model(other, [1, 32, 32, 3], "float32"))
    return f"valid {other} model under a .{fmt_of(src)} name"


def tiny_model(fmt: str, shape: list, dtype: str) -> bytes:
    """input(shape, dtype) -> cast to float -> flatten -> dense(10) -> softmax, as a file."""
    return _tiny_tflite(shape, dtype) if fmt == "tflite" else _tiny_onnx(shape, dtype)


def _schema():
    from ai_edge_litert import schema_py_generated as schema
    return schema


def _tiny_tflite(shape, dtype) -> bytes:
    s = _schema()
    n = int(np.prod(shape[1:]))
    ttype = {"float32": s.TensorType.FLOAT32, "int32": s.TensorType.INT32, "uint8": s.TensorType.UINT8,
             "int8": s.TensorType.INT8, "int64": s.TensorType.INT64, "float64": s.TensorType.FLOAT64,
             "int16": s.TensorType.INT16, "bool": s.TensorType.BOOL}[dtype]

    def tensor(name, shp, typ=s.TensorType.FLOAT32, buf=0):
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name.encode(), np.asarray(shp, np.int32), typ, buf
        return t

    def buffer(arr=None):
        b = s.BufferT()
        b.data = None if arr is None else np.frombuffer(arr.tobytes(), np.uint8)
        return b

    def code(op):
        c = s.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = op, min(op, 127), 1
        return c

    def operator(opcode, ins, outs, opt_type, opt):
        o = s.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = opcode, np.asarray(ins, np.int32), np.asarray(outs, np.int32)
        o.builtinOptionsType, o.builtinOptions = opt_type, opt
        return o

    w = np.random.default_rng(0).normal(0, 0.05, (10, n)).astype(np.float32)
    tensors = [tensor("image", shape, ttype), tensor("float", shape), tensor("shape", [2], s.TensorType.INT32, 1),
               tensor("flat", [1, n]), tensor("w", [10, n], buf=2), tensor("logits", [1, 10]),
               tensor("probs", [1, 10])]
    reshape = s.ReshapeOptionsT()
    reshape.newShape = np.asarray([1, n], np.int32)
    cast = s.CastOptionsT()
    cast.inDataType, cast.outDataType = ttype, s.TensorType.FLOAT32
    fc = s.FullyConnectedOptionsT()
    softmax = s.SoftmaxOptionsT()
    softmax.beta = 1.0
    B = s.BuiltinOperator
    ops = [operator(0, [0], [1], s.BuiltinOptions.CastOptions, cast),
           operator(1, [1, 2], [3], s.BuiltinOptions.ReshapeOptions, reshape),
           operator(2, [3, 4, -1], [5], s.BuiltinOptions.FullyConnectedOptions, fc),
           operator(3, [5], [6], s.BuiltinOptions.SoftmaxOptions, softmax)]
    sub = s.SubGraphT()
    sub.tensors, sub.operators, sub.name = tensors, ops, b"main"
    sub.inputs, sub.outputs = np.asarray([0], np.int32), np.asarray([6], np.int32)
    m = s.ModelT()
    m.version, m.description = 3, b"tools.faults.mutate tiny model"
    m.operatorCodes = [code(B.CAST), code(B.RESHAPE), code(B.FULLY_CONNECTED), code(B.SOFTMAX)]
    m.subgraphs = [sub]
    m.buffers = [buffer(), buffer(np.asarray([1, n], np.int32)), buffer(w)]
    return _pack_tflite(m)


def _pack_tflite(model) -> bytes:
    import flatbuffers
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _tiny_onnx(shape, dtype) -> bytes:
    from onnx import TensorProto, helper, numpy_helper
    n = int(np.prod(shape[1:]))
    etype = {"float32": TensorProto.FLOAT, "int32": TensorProto.INT32, "uint8": TensorProto.UINT8,
             "int8": TensorProto.INT8, "int64": TensorProto.INT64, "float64": TensorProto.DOUBLE,
             "int16": TensorProto.INT16, "bool": TensorProto.BOOL}[dtype]
    w = np.random.default_rng(0).normal(0, 0.05, (n, 10)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Cast", ["image"], ["float"], to=TensorProto.FLOAT),
         helper.make_node("Reshape", ["float", "shape"], ["flat"]),
         helper.make_node("MatMul", ["flat", "w"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)],
        "tiny", [helper.make_tensor_value_info("image", etype, shape)],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [shape[0], 10])],
        [numpy_helper.from_array(np.asarray([-1, n], np.int64), "shape"), numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="tools.faults.mutate")
    m.ir_version = 8
    return m.SerializeToString()


# --- one parsed field at a time -----------------------------------------------------------

@mutator("structural")
def structural(src, dest, rng):
    data = Path(src).read_bytes()
    out, what = (_tflite_edit if fmt_of(src) == "tflite" else _onnx_edit)(data, rng)
    _write(dest, _differ(out, data, rng))
    return what


_ODD = (0, -1, -7, 1, 3, 1000, 1 << 20, (1 << 31) - 1)


def _pick(rng, seq):
    return seq[_ri(rng, 0, len(seq) - 1)]


def _tflite_edit(data: bytes, rng) -> tuple[bytes, str]:
    s = _schema()
    m = s.ModelT.InitFromPackedBuf(data, 0)
    sub = m.subgraphs[0]
    ts, ops = sub.tensors, sub.operators
    edit = _pick(rng, ("tensor_shape", "tensor_type", "tensor_buffer", "op_input", "op_output",
                       "opcode_index", "builtin_code", "buffer_data", "buffer_offset", "subgraph_io",
                       "options", "quantization"))
    if edit == "tensor_shape":
        t = _pick(rng, ts)
        if t.shape is None or len(t.shape) == 0:
            t.shape = np.asarray([_pick(rng, _ODD)], np.int32)
        else:
            t.shape = np.array(t.shape, np.int32)
            i = _ri(rng, 0, len(t.shape) - 1)
            t.shape[i] = _pick(rng, _ODD)
            t.shapeSignature = None if rng.random() < 0.5 else t.shape.copy()
        return _pack_tflite(m), f"tflite: tensor {t.name!r} shape -> {t.shape.tolist()}"
    if edit == "tensor_type":
        t = _pick(rng, ts)
        t.type = _ri(rng, 0, 24)
        return _pack_tflite(m), f"tflite: tensor {t.name!r} type -> {t.type}"
    if edit == "tensor_buffer":
        t = _pick(rng, ts)
        t.buffer = _ri(rng, 0, len(m.buffers) + 3)
        return _pack_tflite(m), f"tflite: tensor {t.name!r} buffer -> {t.buffer}"
    if edit in ("op_input", "op_output"):
        o = _pick(rng, ops)
        attr = "inputs" if edit == "op_input" else "outputs"
        v = np.array(getattr(o, attr), np.int32)
        v[_ri(rng, 0, len(v) - 1)] = _ri(rng, -2, len(ts) + 3)
        setattr(o, attr, v)
        return _pack_tflite(m), f"tflite: an op's {attr} -> {v.tolist()}"
    if edit == "opcode_index":
        o = _pick(rng, ops)
        o.opcodeIndex = _ri(rng, 0, len(m.operatorCodes) + 2)
        return _pack_tflite(m), f"tflite: an op's opcode index -> {o.opcodeIndex}"
    if edit == "builtin_code":
        c = _pick(rng, m.operatorCodes)
        c.builtinCode = _ri(rng, 0, 210)
        c.deprecatedBuiltinCode = min(c.builtinCode, 127)
        return _pack_tflite(m), f"tflite: an operator code -> builtin {c.builtinCode}"
    if edit == "buffer_data":
        full = [b for b in m.buffers if b.data is not None and len(b.data)]
        b = _pick(rng, full)
        n = _ri(rng, 0, len(b.data) - 1)
        b.data = b.data[:n] if n else None
        return _pack_tflite(m), f"tflite: a weight buffer cut to {n} bytes"
    if edit == "buffer_offset":
        b = _pick(rng, m.buffers)
        b.offset, b.size = _ri(rng, 1, 1 << 30), _ri(rng, 1, 1 << 30)
        return _pack_tflite(m), f"tflite: a buffer points at offset {b.offset} size {b.size}"
    if edit == "subgraph_io":
        attr = _pick(rng, ("inputs", "outputs"))
        setattr(sub, attr, np.asarray([_ri(rng, -1, len(ts) + 3)], np.int32))
        return _pack_tflite(m), f"tflite: subgraph {attr} -> {getattr(sub, attr).tolist()}"
    if edit == "options":
        o = _pick(rng, ops)
        o.builtinOptionsType, o.builtinOptions = 0, None
        return _pack_tflite(m), "tflite: an op lost its builtin options"
    q_ts = [t for t in ts if t.quantization is not None and t.quantization.scale is not None]
    if not q_ts:  # a float model: give a tensor quantization it cannot use
        t = _pick(rng, ts)
        t.quantization = s.QuantizationParametersT()
    else:
        t = _pick(rng, q_ts)
    q = t.quantization
    q.scale = np.asarray([_pick(rng, (0.0, -1.0, np.nan, np.inf, 1e-30))] * _ri(rng, 1, 3), np.float32)
    q.zeroPoint = np.asarray([_ri(rng, -300, 300)] * _ri(rng, 1, 3), np.int64)
    q.quantizedDimension = _ri(rng, 0, 5)
    return _pack_tflite(m), (f"tflite: tensor {t.name!r} quantization scale {q.scale.tolist()} "
                             f"zero point {q.zeroPoint.tolist()} dim {q.quantizedDimension}")


_ONNX_OPS = ("Conv", "Relu", "Add", "MatMul", "Gemm", "Reshape", "Transpose", "Softmax", "Concat",
             "Tanh", "Exp", "Min", "QuantizeLinear", "DequantizeLinear", "Flatten", "NoSuchOp")


def _onnx_edit(data: bytes, rng) -> tuple[bytes, str]:
    import onnx
    m = onnx.load_from_string(data)
    g = m.graph
    edit = _pick(rng, ("op_type", "node_input", "cycle", "init_dims", "init_type", "init_data",
                       "attribute", "io_type", "io_dims", "opset", "drop_node", "dup_output"))
    node = _pick(rng, g.node)
    if edit == "op_type":
        node.op_type = _pick(rng, _ONNX_OPS)
        what = f"node {node.name!r} op -> {node.op_type}"
    elif edit == "node_input" and len(node.input):
        i = _ri(rng, 0, len(node.input) - 1)
        node.input[i] = "no_such_tensor"
        what = f"node {node.name!r} input {i} -> a missing tensor"
    elif edit == "cycle" and len(node.input) and len(node.output):
        node.input[0] = node.output[0]
        what = f"node {node.name!r} reads its own output"
    elif edit.startswith("init_") and len(g.initializer):
        t = _pick(rng, g.initializer)
        if edit == "init_dims" and len(t.dims):
            t.dims[_ri(rng, 0, len(t.dims) - 1)] = _pick(rng, _ODD)
            what = f"initializer {t.name!r} dims -> {list(t.dims)}"
        elif edit == "init_type":
            t.data_type = _ri(rng, 0, 25)
            what = f"initializer {t.name!r} type -> {t.data_type}"
        else:
            raw = t.raw_data
            t.raw_data = raw[:_ri(rng, 0, max(0, len(raw) - 1))]
            what = f"initializer {t.name!r} raw data cut to {len(t.raw_data)} bytes"
    elif edit == "attribute" and len(node.attribute):
        a = _pick(rng, node.attribute)
        if len(a.ints):
            a.ints[_ri(rng, 0, len(a.ints) - 1)] = _pick(rng, _ODD)
            what = f"node {node.name!r} attribute {a.name} -> {list(a.ints)}"
        else:
            a.i = _pick(rng, _ODD)
            a.f = float(_pick(rng, (-1.0, 0.0, float("nan"), 1e30)))
            what = f"node {node.name!r} attribute {a.name} -> i={a.i} f={a.f}"
    elif edit in ("io_type", "io_dims"):
        v = _pick(rng, (g.input[0], g.output[0]))
        tt = v.type.tensor_type
        if edit == "io_type":
            tt.elem_type = _ri(rng, 0, 25)
            what = f"graph value {v.name!r} type -> {tt.elem_type}"
        else:
            d = tt.shape.dim[_ri(rng, 0, len(tt.shape.dim) - 1)]
            d.dim_value = _pick(rng, _ODD)
            what = f"graph value {v.name!r} a dim -> {d.dim_value}"
    elif edit == "opset":
        m.opset_import[0].version = _ri(rng, 1, 40)
        what = f"opset -> {m.opset_import[0].version}"
    elif edit == "dup_output" and len(g.node) > 1:
        other = _pick(rng, g.node)
        if len(other.output):
            node.output[0] = other.output[0]
        what = f"node {node.name!r} writes {other.name!r}'s output"
    else:
        g.node.remove(node)
        what = f"dropped node {node.name!r}"
    return m.SerializeToString(), f"onnx: {what}"


def mutate(name: str, src: Path, dest: Path, seed: int) -> str:
    """Apply mutator `name` to `src`, writing `dest` (which must not exist)."""
    return MUTATORS[name](Path(src), Path(dest), np.random.default_rng(seed))
