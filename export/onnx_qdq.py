"""How TanhExp's static int8 ONNX graph is built, one strategy per lowering (`INT8_GRAPHS`).

quantize_static puts a QuantizeLinear/DequantizeLinear pair on every tensor and ONNX Runtime
then fuses DQ -> op -> Q into an integer kernel where it has one: QLinearConv, QLinearAdd,
QLinearMul, QLinearSigmoid, QLinearLeakyRelu, MaxPool on integers. It has none for Exp, Tanh or
Elu, so a formula built from those runs in float between the integer convolutions. Strategies:

* "quantize": every op quantized (Elu/Tanh become DQ -> float op -> Q islands);
* "float-island": the formula's ops excluded from quantization, one float island per TanhExp;
* "table": a gate of sigmoids and leaky ReLUs (lowering `lrsgate`). The scalar Mul/Add/Sub
  around each Sigmoid/LeakyRelu are left out of quantization and then folded into the
  neighbouring DequantizeLinear, whose scale and zero point they only change (`fold_affine`);
  every op left has an integer kernel.

`optimized_ops` reads back what ONNX Runtime made of a file, so the manifest can say which
ops run in float on the device's runtime.
"""
from __future__ import annotations

import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np


def _scalars(g) -> dict[str, float]:
    """Every one-element float initializer or Constant output of the graph, by name: read once,
    as the walks below ask about each node's inputs."""
    from onnx import numpy_helper
    arrays = [(i.name, numpy_helper.to_array(i)) for i in g.initializer]
    arrays += [(n.output[0], numpy_helper.to_array(a.t)) for n in g.node if n.op_type == "Constant"
               for a in n.attribute if a.name == "value"]
    return {name: float(v.reshape(-1)[0]) for name, v in arrays if v.size == 1 and v.dtype.kind == "f"}


def _affine(node, scalars: dict):
    """(input name, alpha, beta) when `node` computes alpha*input + beta with a scalar constant
    (Mul, Add, Sub; Div by a constant; `scalars` from `_scalars`), else None."""
    if node.op_type not in ("Mul", "Add", "Sub", "Div") or len(node.input) != 2:
        return None
    for i in (0, 1):
        k = scalars.get(node.input[i])
        if k is None:
            continue
        x = node.input[1 - i]
        if node.op_type == "Mul":
            return x, k, 0.0
        if node.op_type == "Add":
            return x, 1.0, k
        if node.op_type == "Sub":
            return (x, 1.0, -k) if i == 1 else (x, -1.0, k)
        if node.op_type == "Div" and i == 1 and k != 0:
            return x, 1.0 / k, 0.0
    return None


def _users(g) -> dict[str, list]:
    users: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    return users


def float_island(model) -> list[str]:
    """Names of the nodes that compute TanhExp in float (the `naive` lowering: Exp, Tanh and the
    Mul that takes a Tanh's output), for quantize_static to leave unquantized: the activation
    then runs as one DequantizeLinear, three float ops and one QuantizeLinear. Empty for a
    model without TanhExp."""
    nodes = model.graph.node
    tanh_out = {o for n in nodes if n.op_type == "Tanh" for o in n.output}
    return [n.name for n in nodes if n.op_type in ("Exp", "Tanh")
            or (n.op_type == "Mul" and tanh_out.intersection(n.input))]


# ops ONNX Runtime's CPU provider runs as a 256-entry table when between DQ and Q
TABLE_OPS = ("Sigmoid", "LeakyRelu")


def table_affines(model) -> list[str]:
    """Names of the scalar affine nodes next to each table op (TABLE_OPS): the chain a*x + b
    that feeds it and the scale c applied to its output (the `sgate*` lowerings), for
    quantize_static to leave unquantized and `fold_affine` to fold."""
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    users, scalars = _users(g), _scalars(g)
    names: list[str] = []
    for s in (n for n in g.node if n.op_type in TABLE_OPS):
        src = producer.get(s.input[0])
        while src is not None and (aff := _affine(src, scalars)) and len(users.get(src.output[0], [])) == 1:
            names.append(src.name)
            src = producer.get(aff[0])
        out = users.get(s.output[0], [])
        while len(out) == 1 and (aff := _affine(out[0], scalars)) and aff[0] in s.output:
            names.append(out[0].name)
            s, out = out[0], users.get(out[0].output[0], [])
    return list(dict.fromkeys(names))


def _chains(g, users):
    """(Q, affine nodes in graph order, the DQ that feeds them, alpha, beta) for each
    QuantizeLinear whose input is alpha*x + beta of a DequantizeLinear's output x."""
    producer = {o: n for n in g.node for o in n.output}
    scalars = _scalars(g)
    found = []
    for q in [n for n in g.node if n.op_type == "QuantizeLinear"]:
        cur, chain = producer.get(q.input[0]), []
        while cur is not None and cur.op_type != "DequantizeLinear" and (aff := _affine(cur, scalars)):
            chain.insert(0, (cur, aff))
            cur = producer.get(aff[0])
        if not chain or cur is None or cur.op_type != "DequantizeLinear" or len(cur.input) < 3:
            continue
        if any(len(users.get(n.output[0], [])) != 1 for n, _ in chain):
            continue
        alpha, beta = 1.0, 0.0
        for _, (_, a, b) in chain:  # u = a_k(...(a_1 x + b_1)...) + b_k
            alpha, beta = a * alpha, a * beta + b
        if alpha > 0:
            found.append((q, [n for n, _ in chain], cur, alpha, beta))
    return found


def _widen(inits, dq, points) -> None:
    """Widen the grid behind `dq` (its scale and zero point initializers, shared with the
    QuantizeLinear that wrote the codes) to hold every x in `points`: each folded table reads
    x's codes with its zero point at x = -beta/alpha, which must be a code. A trained net's
    convolution outputs reach far below the sigmoid terms' -beta/alpha (-1.66 at most); only
    an all-positive or very narrow range is widened, at that tensor's resolution's cost."""
    from onnx import numpy_helper
    s, z = (numpy_helper.to_array(inits[n]) for n in dq.input[1:3])
    info = np.iinfo(z.dtype)
    sc, zp = float(s), float(z)
    lo, hi = sc * (info.min - zp), sc * (info.max - zp)
    lo2, hi2 = min([lo, *points]), max([hi, *points])
    if lo2 >= lo and hi2 <= hi:
        return
    sc2 = (hi2 - lo2) / (info.max - info.min)
    zp2 = int(np.clip(round(info.min - lo2 / sc2), info.min, info.max))
    inits[dq.input[1]].CopyFrom(numpy_helper.from_array(np.array(sc2, dtype=s.dtype), dq.input[1]))
    inits[dq.input[2]].CopyFrom(numpy_helper.from_array(np.array(zp2, dtype=z.dtype), dq.input[2]))


def fold_affine(model) -> int:
    """DQ(q; s, z) -> affine float nodes -> Q(s2, z2) -> DQ(s2, z2) becomes one DQ(q; alpha*s,
    z - beta/(alpha*s)): the same codes read on a scaled and shifted grid. Exact but for the
    zero point's rounding (at most half a step of the new grid), and one rounding fewer. x's
    own grid is widened where it cannot place the new zero point (`_widen`). Chains with a
    non-positive alpha or per-channel parameters stay as they are. Returns how many folded."""
    from onnx import helper, numpy_helper
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    users = _users(g)
    chains = [c for c in _chains(g, users)
              if c[2].input[1] in inits and c[2].input[2] in inits
              and numpy_helper.to_array(inits[c[2].input[1]]).size == 1]
    sources: dict[tuple, list] = {}
    for q, chain, dq, alpha, beta in chains:
        sources.setdefault((dq.input[1], dq.input[2]), [dq]).append(-beta / alpha)
    for dq, *points in sources.values():
        _widen(inits, dq, points)
    dead = set()
    for q, chain, dq, alpha, beta in chains:
        s, z = (numpy_helper.to_array(inits[n]) for n in dq.input[1:3])
        info = np.iinfo(z.dtype)
        new_s = float(s) * alpha
        new_z = int(np.clip(round(float(z) - beta / new_s), info.min, info.max))
        tag = f"{q.name or q.output[0]}_folded"
        g.initializer.extend([numpy_helper.from_array(np.array(new_s, dtype=s.dtype), f"{tag}_scale"),
                              numpy_helper.from_array(np.array(new_z, dtype=z.dtype), f"{tag}_zero_point")])
        after = users.get(q.output[0], [])
        for dq2 in (u for u in after if u.op_type == "DequantizeLinear"):
            g.node.append(helper.make_node("DequantizeLinear", [dq.input[0], f"{tag}_scale", f"{tag}_zero_point"],
                                           [dq2.output[0]], name=f"{tag}_{dq2.name}"))
            dead.add(id(dq2))
        if all(id(u) in dead for u in after):
            dead.update([id(q), *(id(n) for n in chain)])
    keep = [n for n in g.node if id(n) not in dead]
    del g.node[:]
    g.node.extend(_toposort(_live(keep, {o.name for o in g.output})))
    return len(chains)


def _live(nodes, outputs: set) -> list:
    """The nodes something still reads (ONNX Runtime runs an unread DequantizeLinear too)."""
    while True:
        read = outputs | {i for n in nodes for i in n.input}
        kept = [n for n in nodes if any(o in read for o in n.output)]
        if len(kept) == len(nodes):
            return kept
        nodes = kept


def _toposort(nodes):
    """Nodes in an order where each runs after its inputs' producers (ONNX requires it)."""
    made = {o: n for n in nodes for o in n.output}
    done, order = set(), []

    def visit(n):
        if id(n) in done:
            return
        done.add(id(n))
        for i in n.input:
            if i in made:
                visit(made[i])
        order.append(n)
    for n in nodes:
        visit(n)
    return order


@dataclass(frozen=True)
class Int8Graph:
    exclude: Callable       # float model -> names of nodes quantize_static leaves in float
    finish: Callable        # quantized model -> None (in place)


INT8_GRAPHS = {
    "quantize": Int8Graph(lambda model: [], lambda model: None),
    "float-island": Int8Graph(float_island, lambda model: None),
    "table": Int8Graph(table_affines, fold_affine),
}


# --- what ONNX Runtime runs ---------------------------------------------------------------------

_INTEGER_OUT = {"QuantizeLinear", "MaxPool", "NhwcMaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze",
                "Identity", "Concat", "Split", "Slice", "Gather"}


def optimized_ops(path, session_options) -> dict:
    """The op counts of the graph ONNX Runtime runs after its optimizations (`session_options`,
    the runtime's own), and the ops in it that compute in float: any node other than
    DequantizeLinear with a float input, where the types are traced from the graph input
    (QuantizeLinear, QLinear*/QGemm/... outputs and MaxPool/Reshape of integers are integer)."""
    import onnx
    import onnxruntime as ort
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "optimized.onnx")
        session_options.optimized_model_filepath = out
        ort.InferenceSession(os.fspath(path), session_options, providers=["CPUExecutionProvider"])
        g = onnx.load(out).graph
    integer = set()
    init_names = {i.name for i in g.initializer}
    float_ops: Counter = Counter()
    for n in g.node:
        ins = [i for i in n.input if i and i not in init_names]
        if n.op_type == "QuantizeLinear" or n.op_type.startswith(("QLinear", "QGemm", "MatMulInteger", "ConvInteger")):
            integer.update(n.output)
        elif n.op_type in _INTEGER_OUT and ins and ins[0] in integer:
            integer.update(n.output)
        elif n.op_type != "DequantizeLinear" and ins:
            float_ops[n.op_type] += 1
    return {"ops": dict(sorted(Counter(n.op_type for n in g.node).items())),
            "float_ops": dict(sorted(float_ops.items()))}
