"""One-off experiment (not part of the package, no tests): is an int8 ONNX model's
low agreement on this CPU the model or ONNX Runtime's x86 int8 kernels?

ONNX Runtime runs a QDQ model two ways. With its graph optimizations (the default, what the bench
measures) the DequantizeLinear -> Conv -> QuantizeLinear groups are fused into integer kernels;
on x86 those multiply u8 activations by s8 weights with VPMADDUBSW, which sums pairs of
products into int16 and saturates, unless the CPU has VNNI (VPDPBUSD sums into int32). With
optimizations off, every node runs as written: dequantize, float conv, quantize, i.e. the
exact arithmetic the QDQ graph specifies, with no saturation. Same file, same inputs: any gap
between the two is the kernel, not the model.

    python experiments/ort_saturation.py BUNDLE [FILE.onnx ...]   (default: every .onnx)
"""
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from runtime.backends.onnxrt import OnnxBackend
from runtime.bundle import load_bundle, load_reference, load_test
from runtime.provenance import provenance

bundle = Path(sys.argv[1])
inp = load_bundle(bundle)
x, y = load_test(inp.test_path)
ref = load_reference(inp.reference_path, inp.reference_key, len(x))
files = sys.argv[2:] or sorted(a.file for a in inp.artifacts if a.file.endswith(".onnx"))


def run(path: Path, optimize: bool, kernels: str = "fast") -> tuple[np.ndarray, str]:
    """The bench's backend, 1 thread. kernels 'exact': ONNX Runtime's own remedy, s8 weights
    rewritten to u8 for u8u8 kernels (no int16 pair sums); it falls back to 'fast' where the
    rewrite cannot be built, so the arithmetic actually used is printed beside the figures."""
    b = OnnxBackend.load(path, threads=1, normalization=inp.normalization, int8_kernels=kernels,
                         optimize=optimize)
    try:
        return b.run(x, 500), b.int8_arith
    finally:
        b.close()


dev = provenance()["device"]
print(f"# {dev['cpu']} {dev['arch']} isa={dev['isa']!r}, onnxruntime {ort.__version__}, "
      f"{len(x)} test images, bundle {bundle}")
print("| file | graph | accuracy | agreement vs Keras | max abs dp | top-1 vs unoptimized |")
print("|---|---|---|---|---|---|")
for f in files:
    plain, _ = run(bundle / f, optimize=False)
    fused, _ = run(bundle / f, optimize=True)
    exact, arith = run(bundle / f, optimize=True, kernels="exact")
    for name, p in (("unoptimized (QDQ as written)", plain), ("optimized (default)", fused),
                    (f"optimized, session.x64quantprecision=1 ({arith})", exact)):
        print(f"| {f} | {name} | {np.mean(p.argmax(1) == y):.4f} | {np.mean(p.argmax(1) == ref.argmax(1)):.4f} "
              f"| {np.abs(p - ref).max():.2e} | {np.mean(p.argmax(1) == plain.argmax(1)):.4f} |")
