"""One-off experiment (not part of the package, no tests): where does a TFLite
model's time go, op by op, in float32 and in int8, under XNNPACK and under TFLite's own kernels?

Why: on an x86 CPU without VNNI (AVX2 only) LiteRT's int8 models ran *slower* than float32
(results.md). This runs `python -m runtime.profile`'s prefix-model method (see its
docstring) on float32 and int8 files, under XNNPACK and under TFLite's own kernels, and prints
one table of block costs. The costs carry a few us of noise each.

    python experiments/tflite_op_costs.py BUNDLE [--files float32.tflite int8.tflite]
        [--runs 2000] [--json out.json]
"""
import json
import tempfile
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from runtime.bundle import load_bundle, load_test
from runtime.profile import blocks, time_interleaved, tflite_prefixes
from runtime.provenance import provenance
from runtime.cli import Parser

KERNELS = {  # name -> the interpreter's op resolver
    "xnnpack": OpResolverType.AUTO,  # builtin kernels with the XNNPACK delegate applied
    "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,  # TFLite's own (ruy) kernels
}


def main() -> None:
    ap = Parser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--files", nargs="+", default=["float32.tflite", "int8.tflite"])
    ap.add_argument("--kernels", nargs="+", default=list(KERNELS), choices=list(KERNELS))
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    x, _ = load_test(load_bundle(a.bundle).test_path)
    image = x[:1]  # a real test image, in each model's own input encoding
    table = {}
    with tempfile.TemporaryDirectory() as tmp:
        for f in a.files:
            (Path(tmp) / f).mkdir()
            pre = tflite_prefixes(a.bundle / f, Path(tmp) / f)
            for kern in a.kernels:
                its = []
                for _, p in pre:
                    it = Interpreter(model_path=str(p), num_threads=1, experimental_op_resolver_type=KERNELS[kern])
                    it.allocate_tensors()
                    its.append(it)
                d = its[0].get_input_details()[0]
                if d["dtype"] == np.float32:  # the model's own normalization: pixels / 255
                    xin = image.astype(np.float32) / 255.0
                else:  # the model's own input scale and zero point
                    s, z = d["quantization"]
                    xin = np.clip(np.round(image / 255.0 / s + z), -128, 127).astype(d["dtype"])
                for it in its:
                    it.set_tensor(d["index"], xin)
                table[(f, kern)] = blocks([op for op, _ in pre], time_interleaved([it.invoke for it in its], a.runs))
    dev = provenance()["device"]
    print(f"# {dev['cpu']} {dev['arch']} isa={dev['isa']!r}, 1 thread, p50 of {a.runs} calls per prefix "
          f"model, in 10 interleaved warm blocks; block cost = difference of prefix p50s, in us")
    cols = list(table)
    if len({len(b) for b in table.values()}) != 1:  # a different graph per file: one line each
        for c, b in table.items():
            print(f"{c}: " + ", ".join(f"{r['block']} {r['us']:.1f}" for r in b))
    else:
        print("| block | " + " | ".join(f"{f} {k}" for f, k in cols) + " |")
        print("|---" * (len(cols) + 1) + "|")
        for i in range(len(table[cols[0]])):
            print(f"| {table[cols[0]][i]['block']} | " + " | ".join(f"{table[c][i]['us']:.1f}" for c in cols) + " |")
        print("| **whole model** | " + " | ".join(f"**{sum(r['us'] for r in table[c]):.1f}**" for c in cols) + " |")
    if a.json:
        a.json.write_text(json.dumps({"provenance": provenance(), "bundle": str(a.bundle), "runs": a.runs,
                                      "blocks": {f"{f} {k}": [[r["block"], r["us"]] for r in table[(f, k)]]
                                                 for f, k in cols}}, indent=1))


if __name__ == "__main__":
    main()
