"""One-off experiment (session 15; not part of the package, no tests): where does a TFLite
model's time go, op by op, in float32 and in int8, under XNNPACK and under TFLite's own kernels?

Why: on an x86 CPU without VNNI (AVX2 only) LiteRT's int8 models ran *slower* than float32
(results.md section 4), and the Python interpreter has no per-op profiler. This script makes
one on the spot, without TensorFlow: for k = 1..N it writes a copy of the model that keeps the
first k operators and makes the k-th operator's output the graph output (the flatbuffer is
edited with LiteRT's own flatbuffer_utils), then times every prefix model in one
process. The cost of a block of ops (a convolution, its activation, a pool) is the difference
of the p50s of the prefixes that end on either side of it. Prefixes are timed in warm blocks,
interleaved, so machine noise hits them alike; the costs still carry a few us of noise each.

    python docs/experiments/tflite_op_costs.py BUNDLE [--files float32.tflite int8.tflite]
        [--runs 2000] [--json out.json]
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from ai_edge_litert.tools import flatbuffer_utils as fbu

from runtime.bundle import load_bundle, load_test
from runtime.provenance import provenance

OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
KERNELS = {  # name -> the interpreter's op resolver
    "xnnpack": OpResolverType.AUTO,  # builtin kernels with the XNNPACK delegate applied
    "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,  # TFLite's own (ruy) kernels
}


def prefixes(path: Path, out_dir: Path) -> list[tuple[str, Path]]:
    """(op name, model keeping ops[:k]) for k = 1..N; the full model is the last one."""
    model = fbu.read_model(str(path))
    ops = model.subgraphs[0].operators
    names, files = [], []
    for k in range(1, len(ops) + 1):
        m = fbu.read_model(str(path))  # a fresh copy: write_model keeps references
        sub = m.subgraphs[0]
        sub.operators = sub.operators[:k]
        sub.outputs = [sub.operators[-1].outputs[0]]
        code = m.operatorCodes[sub.operators[-1].opcodeIndex]
        names.append(OP_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?"))
        f = out_dir / f"{path.stem}-{k:02d}.tflite"
        fbu.write_model(m, str(f))
        files.append(f)
    return list(zip(names, files))


def interpreter(path: Path, kernels: str) -> Interpreter:
    it = Interpreter(model_path=str(path), num_threads=1, experimental_op_resolver_type=KERNELS[kernels])
    it.allocate_tensors()
    return it


def time_interleaved(its: list, x: np.ndarray, runs: int, rounds: int = 10, warmup: int = 50) -> list[float]:
    """p50 seconds of invoke() per interpreter. Each round gives every interpreter a warm block of
    runs // rounds consecutive calls (its weights stay in cache, as in a deployment that runs one
    model), and the rounds interleave the interpreters so machine noise spreads over all of them.
    One call of each in turn would measure cold caches instead, and penalise the bigger models."""
    for it in its:
        it.set_tensor(it.get_input_details()[0]["index"], x)
    per = max(runs // rounds, 1)
    t = np.zeros((len(its), rounds * per))
    clock = time.perf_counter
    for r in range(rounds):
        for j, it in enumerate(its):
            invoke = it.invoke
            for _ in range(warmup):
                invoke()
            for i in range(per):
                t0 = clock()
                invoke()
                t[j, r * per + i] = clock() - t0
    return list(np.median(t, axis=1))


# Block boundaries: before each of these ops, and after a convolution. What lies between a
# convolution and the next anchor is its activation (one op for ReLU fused into the conv: none).
ANCHORS = {"CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE",
           "FULLY_CONNECTED", "SOFTMAX", "MEAN"}


def blocks(ops: list[str], p50: list[float]) -> list[tuple[str, float]]:
    """(block, cost) from prefix timings. Costs are differences at block boundaries only: a
    prefix that ends inside a block (at a float DEQUANTIZE, say) can be partitioned differently
    by the delegate, so single-op differences inside a block are not trustworthy."""
    out, start = [], 0
    for k in range(1, len(ops) + 1):
        if k == len(ops) or ops[k] in ANCHORS or ops[k - 1] in {"CONV_2D", "DEPTHWISE_CONV_2D"}:
            name = ops[start] if k - start == 1 and ops[start] in ANCHORS else "activation"
            out.append((name, p50[k - 1] - (p50[start - 1] if start else 0.0)))
            start = k
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--files", nargs="+", default=["float32.tflite", "int8.tflite"])
    ap.add_argument("--kernels", nargs="+", default=list(KERNELS), choices=list(KERNELS))
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    x, _ = load_test(load_bundle(a.bundle).test_path)
    image = x[:1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for f in a.files:
            pre = prefixes(a.bundle / f, Path(tmp))
            for kern in a.kernels:
                its = [interpreter(p, kern) for _, p in pre]
                d = its[0].get_input_details()[0]
                if d["dtype"] == np.float32:  # the model's own normalization: pixels / 255
                    xin = image.astype(np.float32) / 255.0
                else:  # the model's own input scale and zero point
                    s, z = d["quantization"]
                    xin = np.clip(np.round(image / 255.0 / s + z), -128, 127).astype(d["dtype"])
                p50 = time_interleaved(its, xin, a.runs)
                prev = 0.0
                for k, ((op, _), t) in enumerate(zip(pre, p50)):
                    rows.append({"file": f, "kernels": kern, "k": k + 1, "op": op,
                                 "prefix_p50_us": t * 1e6, "op_us": (t - prev) * 1e6})
                    prev = t
    dev = provenance()["device"]
    print(f"# {dev['cpu']} {dev['arch']} isa={dev['isa']!r}, 1 thread, p50 of {a.runs} calls per prefix "
          f"model, in 10 interleaved warm blocks; block cost = difference of prefix p50s, in us")
    cols = [(f, k) for f in a.files for k in a.kernels]
    table = {c: blocks([r["op"] for r in rows if (r["file"], r["kernels"]) == c],
                       [r["prefix_p50_us"] for r in rows if (r["file"], r["kernels"]) == c]) for c in cols}
    if len({len(b) for b in table.values()}) != 1:  # a different graph per file: one table each
        for c, b in table.items():
            print(f"{c}: " + ", ".join(f"{n} {t:.1f}" for n, t in b))
    else:
        print("| block | " + " | ".join(f"{f} {k}" for f, k in cols) + " |")
        print("|---" * (len(cols) + 1) + "|")
        for i in range(len(table[cols[0]])):
            print(f"| {table[cols[0]][i][0]} | " + " | ".join(f"{table[c][i][1]:.1f}" for c in cols) + " |")
        print("| **whole model** | " + " | ".join(f"**{sum(t for _, t in table[c]):.1f}**" for c in cols) + " |")
    if a.json:
        a.json.write_text(json.dumps({"provenance": provenance(), "bundle": str(a.bundle), "runs": a.runs,
                                      "blocks": {f"{f} {k}": table[(f, k)] for f, k in cols},
                                      "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
