"""Op allow-lists: what a device runtime can execute without extra libraries.

TFLite: builtin operators only. A custom op (including every `Flex*` op that SELECT_TF_OPS
produces) needs a TensorFlow kernel library the device does not have. ONNX: the default
domain only ('' or 'ai.onnx'); `com.microsoft` and other domains are runtime-specific.

The op lists are read from the files themselves (the TFLite flatbuffer schema, the ONNX
protobuf), never from what the converter was asked to do.
"""
from __future__ import annotations

import struct
from collections import Counter

from export.errors import ExportFailed, OpNotAllowed, one_line

ONNX_DOMAINS = ("", "ai.onnx")


def _tflite_schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # older stacks ship the same generated module inside TensorFlow
        from tensorflow.lite.python import schema_py_generated as schema
    return schema


def tflite_ops(buf: bytes) -> list[str]:
    """Every operator in every subgraph, in graph order; custom ops as 'CUSTOM:<name>'.

    The generated reader trusts every offset, so a damaged file fails deep inside it with
    struct.error or IndexError: those become one ExportFailed that says what the file is."""
    if len(buf) < 8 or bytes(buf[4:8]) != b"TFL3":
        raise ExportFailed("not a TFLite flatbuffer (no 'TFL3' identifier at bytes 4:8)")
    try:
        return _tflite_ops(buf)
    except (struct.error, IndexError, ValueError, UnicodeDecodeError) as e:
        raise ExportFailed(f"not a readable TFLite flatbuffer ({type(e).__name__}: {one_line(e)})") from None


def _tflite_ops(buf: bytes) -> list[str]:
    schema = _tflite_schema()
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.Model.GetRootAsModel(buf, 0)
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        # builtin codes above 127 live in BuiltinCode; older files only fill the deprecated byte
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        if code == schema.BuiltinOperator.CUSTOM:
            custom = oc.CustomCode()
            codes.append(f"CUSTOM:{custom.decode() if custom else '?'}")
        else:
            codes.append(names.get(code, f"UNKNOWN_BUILTIN_{code}"))
    ops = []
    for s in range(model.SubgraphsLength()):
        sub = model.Subgraphs(s)
        n = sub.OperatorsLength()
        # lengths are read from the file: a damaged one can claim billions of entries (and
        # entries may share one table), so bound the walk by what the bytes can hold
        if len(ops) + n > len(buf) // 4:
            raise ExportFailed(f"not a readable TFLite flatbuffer (claims {len(ops) + n} operators "
                               f"in {len(buf)} bytes)")
        for j in range(n):
            ops.append(codes[sub.Operators(j).OpcodeIndex()])
    return ops


def onnx_ops(model) -> list[str]:
    """Every node (including nodes in subgraphs and local functions) as 'Op' or 'domain:Op'."""
    ops = []

    def walk(nodes):
        for n in nodes:
            ops.append(n.op_type if n.domain in ONNX_DOMAINS else f"{n.domain}:{n.op_type}")
            for a in n.attribute:  # If/Loop/Scan bodies
                if a.g.node:
                    walk(a.g.node)
                for g in a.graphs:
                    walk(g.node)

    walk(model.graph.node)
    for f in model.functions:
        ops.append(f"{f.domain}:{f.name}" if f.domain not in ONNX_DOMAINS else f.name)
        walk(f.node)
    return ops


def violations(fmt: str, ops: list[str]) -> list[str]:
    if fmt == "tflite":
        bad = [o for o in ops if o.startswith(("CUSTOM:", "UNKNOWN_BUILTIN_"))]
    elif fmt == "onnx":
        bad = [o for o in ops if ":" in o]
    else:
        raise ValueError(f"no op allow-list for format {fmt!r}")
    return sorted(set(bad))


def check(fmt: str, ops: list[str], what: str) -> None:
    bad = violations(fmt, ops)
    if bad:
        rule = "builtin ops only" if fmt == "tflite" else "default ONNX domain only"
        raise OpNotAllowed(f"{what} uses op(s) outside the {fmt} allow-list ({rule}): {', '.join(bad)}")


def unique(ops: list[str]) -> list[str]:
    """First-appearance order: reads like the network, unlike a sorted list."""
    return list(dict.fromkeys(ops))


def counts(ops: list[str]) -> dict[str, int]:
    return dict(Counter(ops))
