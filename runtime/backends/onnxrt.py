"""ONNX models on ONNX Runtime's CPU provider."""
from __future__ import annotations

import functools
import os
import platform

import numpy as np
import onnxruntime as ort  # ImportError -> MissingRuntime via the registry

from runtime.backends import NORMALIZATION, Backend, TensorSpec, guess_layout
from runtime.errors import ModelError, one_line
from runtime.provenance import cpu_flags

# ONNX Runtime's x86 int8 kernels multiply u8 activations by s8 weights with VPMADDUBSW, which
# adds each pair of products in saturating int16: 255 * 127 * 2 = 64,770 is clamped to 32,767.
# Export writes u8 activations (int8 ones are shifted to u8 on x86), so every fused
# QLinearConv/MatMul is exposed. Only VNNI (VPDPBUSD) sums in int32; ARM's kernels are exact.
# The session entry below rewrites the weights to u8 for the slower u8u8 kernels, which do not
# saturate. Measured on an AVX2-only EPYC, 10-epoch seed nets: int8.onnx top-1 agreement with
# Keras 90.74 % without it for ReLU and TanhExp alike, 98.90 % / 97.89 % with it (= the unfused
# QDQ graph, = LiteRT int8), at 1.0-1.5x the latency (docs/results.md,
# experiments/ort_saturation.py).
X64_EXACT = ("session.x64quantprecision", "1")
_X86 = {"x86_64", "amd64", "i386", "i686", "x86"}
_VNNI = {"avx512_vnni", "avx_vnni"}


def u8s8_saturates(machine: str | None = None, flags: set[str] | None = None) -> bool:
    """True where ONNX Runtime's default int8 kernels saturate: x86 without VNNI."""
    m = (platform.machine() if machine is None else machine).lower()
    return m in _X86 and not (_VNNI & (cpu_flags() if flags is None else flags))


def _exact_kernels(int8_kernels: str, saturates: bool) -> bool:
    return int8_kernels == "exact" or (int8_kernels == "auto" and saturates)


def session_options(threads: int | None = 1, int8_kernels: str = "auto", saturates: bool | None = None,
                    optimize: bool = True):
    """SessionOptions for one model, and what its int8 arithmetic is ('exact' / 'saturating').

    optimize False runs the graph as written, every QuantizeLinear/DequantizeLinear as ONNX
    defines it: no fused integer kernels, so nothing saturates and no kernel switch is needed.
    That describes the file rather than this CPU's kernels (export's parity). threads None:
    ONNX Runtime's default (one per core)."""
    sat = u8s8_saturates() if saturates is None else saturates
    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3  # warnings about unused initializers are noise on a device
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return so, "exact"
    exact = _exact_kernels(int8_kernels, sat)
    if exact:
        so.add_session_config_entry(*X64_EXACT)
    return so, ("saturating" if sat and not exact else "exact")


def _open(path, so):
    return ort.InferenceSession(os.fspath(path), so, providers=["CPUExecutionProvider"])


_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
           "tensor(double)": np.float64, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8}


def _spec(node, quant) -> TensorSpec:
    if node.type not in _DTYPES:
        raise ModelError(f"unsupported tensor type {node.type} for {node.name!r}")
    dtype = np.dtype(_DTYPES[node.type])
    dims = tuple(d if isinstance(d, int) and d > 0 else None for d in node.shape)
    if np.issubdtype(dtype, np.integer):
        # ONNX graph inputs/outputs carry no quantization parameters (they live on the
        # Q/DQ nodes inside), so integer I/O falls back to the manifest's copy
        if quant is None:
            raise ModelError(f"{node.name!r} is {dtype.name} and neither the model nor the "
                             "manifest gives its scale/zero point")
        return TensorSpec(node.name, dims, dtype, float(quant[0]), int(quant[1]))
    return TensorSpec(node.name, dims, dtype)


class OnnxBackend(Backend):
    format = "onnx"

    def __init__(self, sess, normalization, layout_hint, input_quant, output_quant):
        ins, outs = sess.get_inputs(), sess.get_outputs()
        if len(ins) != 1 or len(outs) != 1:
            raise ModelError(f"expected 1 input and 1 output, model has {len(ins)} and {len(outs)}")
        inp = _spec(ins[0], input_quant)
        super().__init__(inp, _spec(outs[0], output_quant), guess_layout(inp.shape, layout_hint),
                         normalization)
        self._sess = sess
        self.batch = inp.shape[0] or 1
        self._bind()

    @classmethod
    def load(cls, path, threads=1, normalization=NORMALIZATION, layout_hint=None,
             input_quant=None, output_quant=None, int8_kernels="auto", optimize: bool = True):
        sat = u8s8_saturates()
        # The exact kernels' weight rewrite fails on some valid QDQ graphs (ORT 1.32:
        # "AddInitializedOrtValue Attempt to replace the existing tensor" on TanhExp nets
        # exported with int8 activations): then the default kernels, and int8_arith says so.
        fallback = optimize and _exact_kernels(int8_kernels, sat)
        tries = [int8_kernels] + (["fast"] if fallback else [])
        for kernels in tries:
            so, arith = session_options(threads, kernels, sat, optimize)
            try:
                sess = _open(path, so)
                break
            except Exception as e:  # onnxruntime's pybind exceptions share no useful base class
                error = e
        else:
            raise ModelError(f"ONNX Runtime cannot load it: {one_line(error, with_type=False)}") from None
        backend = cls(sess, normalization, layout_hint, input_quant, output_quant)
        backend.int8_arith = arith
        return backend

    def _bind(self) -> None:
        # IO binding skips the feed-dict parsing of sess.run: fewer microseconds per call
        sess, name = self._sess, self.input.name
        io = sess.io_binding()
        io.bind_output(self.output.name)
        bind, run, copy = io.bind_cpu_input, sess.run_with_iobinding, io.copy_outputs_to_cpu
        keep = []  # the bound numpy array must outlive the binding

        def infer(x):
            bind(name, x)
            run(io)
            return copy()[0]

        def set_input(x):
            keep[:] = [x]
            bind(name, x)

        self.infer, self.set_input = infer, set_input
        self.invoke_raw = functools.partial(run, io)  # C-level call, like the bench's

    def set_batch(self, n: int) -> bool:
        if n == self.batch:
            return True
        if self.input.shape[0] is None:
            self.batch = n
            self._bind()  # a bound output keeps its first shape: rebind for the new one
            return True
        return False

    def close(self) -> None:
        self._sess = None
        self.infer = self.invoke_raw = self.set_input = None


BACKEND = OnnxBackend
