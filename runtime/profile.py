"""python -m runtime.profile MODEL: where one model's time goes, op by op, on this device.

ONNX Runtime profiles itself (SessionOptions.enable_profiling writes each node's kernel time
per run); we take each node's median over the runs. LiteRT's Python interpreter has no op
profiler, so a .tflite file is cut after each operator instead: prefix k keeps operators 1..k
and makes the k-th one's output the graph output (the flatbuffer is edited with LiteRT's own
`flatbuffer_utils`). Every prefix is timed in the same process, in warm blocks of calls (its
weights stay in cache, as when a device runs one model) interleaved across the prefixes (so
machine noise falls on all alike), and a block of ops costs the difference of the p50s on
either side of it. Block boundaries sit before each convolution, pool, reshape, dense or
softmax and after each convolution: a prefix ending inside an activation (at a float
DEQUANTIZE, say) can be partitioned differently by the XNNPACK delegate, so single-op
differences there are not trustworthy. It found that XNNPACK's int8 first convolution costs
~3x its float32 one on an x86 without VNNI (docs/results.md).

Exit codes: 0 profiled, 2 bad input (one `error:` line).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from runtime.errors import BenchError, ModelError, one_line
from runtime.fileio import check_writable, write_json
from runtime.provenance import provenance
from runtime.table import markdown_table
from runtime.cli import Parser

PROFILE_SCHEMA = "edge-profile/1"

# Block boundaries (see the docstring): before these ops, and after a convolution.
ANCHORS = {"CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE",
           "FULLY_CONNECTED", "SOFTMAX", "MEAN"}
CONVS = {"CONV_2D", "DEPTHWISE_CONV_2D"}


def tflite_prefixes(path, out_dir) -> list[tuple[str, Path]]:
    """(op name, model file keeping ops[:k]) for k = 1..N; the last is the whole graph."""
    try:
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.tools import flatbuffer_utils as fbu
    except ImportError:  # tflite-runtime ships neither
        raise ModelError("profiling a .tflite file needs ai-edge-litert (its flatbuffer tools)") from None
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    try:
        n = len(fbu.read_model(os.fspath(path)).subgraphs[0].operators)
    except Exception as e:  # noqa: BLE001  flatbuffers raises anything on a damaged file
        raise ModelError(f"cannot read the TFLite graph: {one_line(e)}") from None
    out = []
    for k in range(1, n + 1):
        m = fbu.read_model(os.fspath(path))  # a fresh copy per prefix: write_model keeps references
        sub = m.subgraphs[0]
        sub.operators = sub.operators[:k]
        sub.outputs = [sub.operators[-1].outputs[0]]
        code = m.operatorCodes[sub.operators[-1].opcodeIndex]
        f = Path(out_dir) / f"prefix-{k:03d}.tflite"
        fbu.write_model(m, os.fspath(f))
        out.append((names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM"), f))
    return out


def time_interleaved(calls: list, runs: int, rounds: int = 10, warmup: int = 20) -> list[float]:
    """p50 seconds per zero-argument callable: each round gives every callable a warm block of
    runs // rounds consecutive calls; rounds interleave the callables. One call of each in
    turn would measure cold caches instead and penalize the bigger models."""
    per = max(runs // rounds, 1)
    t = np.zeros((len(calls), rounds * per))
    clock = time.perf_counter
    for r in range(rounds):
        for j, call in enumerate(calls):
            for _ in range(warmup):
                call()
            for i in range(per):
                t0 = clock()
                call()
                t[j, r * per + i] = clock() - t0
    return list(np.median(t, axis=1))


def blocks(ops: list[str], p50: list[float]) -> list[dict]:
    """Blocks of consecutive ops with their cost, from the p50s of the prefixes ending at each op."""
    out, start = [], 0
    for k in range(1, len(ops) + 1):
        if k == len(ops) or ops[k] in ANCHORS or ops[k - 1] in CONVS:
            part = ops[start:k]
            name = part[0] if len(part) == 1 and part[0] in ANCHORS else "activation"
            cost = p50[k - 1] - (p50[start - 1] if start else 0.0)
            out.append({"block": name, "ops": " ".join(part), "us": cost * 1e6})
            start = k
    return out


def _random_input(dtype, shape, rng) -> np.ndarray:
    """A seeded random tensor; a dynamic (None or <= 0) dimension becomes 1."""
    dt = np.dtype(dtype)
    shape = [max(int(v or 1), 1) for v in shape]
    if np.issubdtype(dt, np.integer):
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dt)
    return rng.random(shape, dtype=np.float32).astype(dt)


def profile_tflite(path, threads: int = 1, runs: int = 2000, op_resolver=None) -> tuple[list[dict], dict]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from runtime.backends.litert import check_flatbuffer
    check_flatbuffer(path)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="profile-") as tmp:
        pre = tflite_prefixes(path, tmp)
        calls, x = [], None
        for _, f in pre:
            try:
                it = Interpreter(model_path=os.fspath(f), num_threads=threads,
                                 experimental_op_resolver_type=op_resolver or OpResolverType.AUTO)
                it.allocate_tensors()
            except (ValueError, RuntimeError) as e:
                raise ModelError(f"LiteRT cannot load it: {one_line(e, with_type=False)}") from None
            d = it.get_input_details()[0]
            x = _random_input(d["dtype"], d["shape"], rng) if x is None else x  # one input for every prefix
            it.set_tensor(d["index"], x)
            calls.append(it.invoke)
        p50 = time_interleaved(calls, runs)
    return blocks([op for op, _ in pre], p50), {"method": "prefix models"}


def profile_onnx(path, threads: int = 1, runs: int = 2000, int8_kernels: str = "auto") -> tuple[list[dict], dict]:
    import onnxruntime as ort
    from runtime.backends.onnxrt import BACKEND, session_options
    # The bench's loader first: its one-line errors, and its choice of int8 kernels (the exact
    # ones where this CPU needs them, unless they fail to build). A profiling session that fails
    # to load would also log a second error line of its own from C++.
    checked = BACKEND.load(path, threads, int8_kernels=int8_kernels)
    arith, spec = checked.int8_arith, checked.input  # the input's dtype and shape, read once
    checked.close()
    so, _ = session_options(threads, "fast" if arith == "saturating" else int8_kernels)
    with tempfile.TemporaryDirectory(prefix="profile-") as tmp:
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(os.fspath(path), so, providers=["CPUExecutionProvider"])
        x = _random_input(spec.dtype, spec.shape, np.random.default_rng(0))
        for _ in range(runs):
            sess.run(None, {spec.name: x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    per_node: dict[str, dict] = {}  # insertion order = execution order
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            node = e["name"][: -len("_kernel_time")]
            per_node.setdefault(node, {"op": e.get("args", {}).get("op_name", "?"), "t": []})["t"].append(e["dur"])
    rows = [{"block": v["op"], "ops": node, "us": float(np.median(v["t"]))} for node, v in per_node.items()]
    return rows, {"method": "onnxruntime profiler", "int8_arith": arith}


PROFILERS = {".tflite": profile_tflite, ".onnx": profile_onnx}  # file suffix -> profiler
COLUMNS = [("block", "op / block", ""), ("ops", "nodes", ""), ("us", "us", ".1f"), ("share", "share %", ".1f")]


def profile(path, threads: int = 1, runs: int = 2000) -> dict:
    path = Path(path)
    if path.is_dir():
        raise BenchError(f"{path} is a folder, not a model file")
    if not path.is_file():
        raise BenchError(f"model not found: {path}")
    fn = PROFILERS.get(path.suffix.lower())
    if fn is None:
        raise BenchError(f"{path.name}: not a .tflite or .onnx file")
    rows, how = fn(path, threads, runs)
    total = sum(r["us"] for r in rows)
    for r in rows:
        r["share"] = 100 * r["us"] / total if total > 0 else None
    return {"schema": PROFILE_SCHEMA, "provenance": provenance(model=str(path)),
            "settings": {"threads": threads, "runs": runs, **how},
            "total_us": total, "rows": rows}


def main(argv=None) -> int:
    from runtime.bench import _count  # the bench's positive-integer option type
    p = Parser(prog="python -m runtime.profile", description=__doc__.split("\n\n")[0],
                                epilog="TFLite: ops grouped into blocks (a convolution, its activation, a pool...), "
                                       "each costed by prefix models; ONNX: every node, from ONNX Runtime's profiler.")
    p.error = lambda msg: (print(f"error: {msg} (see --help)", file=sys.stderr), sys.exit(2))
    p.add_argument("model", help="a .tflite or .onnx file")
    p.add_argument("--threads", type=_count(), default=1, help="runtime threads (1)")
    p.add_argument("--runs", type=_count(), default=2000, help="timed calls per prefix model / profiled runs (2000)")
    p.add_argument("--json", metavar="PATH", help="write the edge-profile/1 document here")
    a = p.parse_args(argv)
    try:
        if a.json:  # before minutes of timing, not after
            check_writable(a.json)
    except OSError as e:
        print(f"error: cannot write {a.json}: {e.strerror or one_line(e)}", file=sys.stderr)
        return 2
    try:
        doc = profile(a.model, a.threads, a.runs)
    except (BenchError, ModelError) as e:
        print(f"error: {one_line(e, with_type=False)}", file=sys.stderr)
        return 2
    except OSError as e:  # an unreadable model file
        print(f"error: cannot read {a.model}: {e.strerror or one_line(e)}", file=sys.stderr)
        return 2
    dev = doc["provenance"]["device"]
    print(f"{a.model}: {doc['settings']['method']}, {dev.get('cpu')} ({dev.get('arch')}), "
          f"{a.threads} thread(s), {a.runs} runs; total {doc['total_us']:.1f} us")
    print(markdown_table(doc["rows"], COLUMNS))
    if a.json:
        try:
            write_json(a.json, doc)  # atomic: a failed write leaves no partial file
        except OSError as e:
            print(f"error: cannot write {a.json}: {e.strerror or one_line(e)}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
