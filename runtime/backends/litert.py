"""TFLite models on LiteRT (`ai-edge-litert`), or `tflite-runtime` on older Raspberry Pis."""
from __future__ import annotations

import os

import numpy as np

try:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
except ImportError:  # the older package name still found on Pi OS images
    from tflite_runtime.interpreter import Interpreter  # ImportError here -> MissingRuntime
    try:
        from tflite_runtime.interpreter import OpResolverType
    except ImportError:  # releases before the op resolver choice: XNNPACK as built
        OpResolverType = None

from runtime.backends import NORMALIZATION, Backend, TensorSpec, guess_layout
from runtime.errors import ModelError, one_line


def check_flatbuffer(model) -> None:
    """Cheap structural checks before the native loader sees the bytes (a file path, or the
    bytes themselves): the file identifier at 4:8 and a root-table offset inside the file.
    LiteRT also verifies the flatbuffer, but a clear message beats 'not a valid Flatbuffer
    buffer' for the common mistakes."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        buf = bytes(model)
    else:
        with open(model, "rb") as f:
            buf = f.read()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ModelError("not a TFLite model (no 'TFL3' flatbuffer identifier at bytes 4:8)")
    if int.from_bytes(buf[:4], "little") >= len(buf):
        raise ModelError("truncated TFLite model (root table offset past the end of the file)")
    check_tensor_sizes(buf)


# No tensor of an edge model comes near this. A damaged shape can claim gigabytes; LiteRT
# plans memory from the shapes in the file, and where the allocation fails (a small device,
# a 32-bit userland, an address-space limit) it can crash instead of raising.
MAX_TENSOR_BYTES = 1 << 30
_ITEMSIZE = {1: 2, 4: 8, 8: 8, 10: 8, 11: 16, 12: 8}  # TensorType -> bytes where not 4 or less


def check_tensor_sizes(buf: bytes) -> None:
    """Refuse a model whose tensors claim more than MAX_TENSOR_BYTES each, before LiteRT sees it.
    Where the file cannot be read here, LiteRT's own verifier decides (and says why)."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # tflite-runtime ships no schema module: LiteRT's checks only
        return
    budget = len(buf) // 4  # tensors to look at: a damaged file can claim billions
    try:
        model = schema.Model.GetRootAsModel(buf, 0)
        for s in range(model.SubgraphsLength()):
            sub = model.Subgraphs(s)
            for i in range(sub.TensorsLength()):
                budget -= 1
                if budget < 0:
                    return
                t = sub.Tensors(i)
                n = _ITEMSIZE.get(t.Type(), 4)
                for j in range(min(t.ShapeLength(), 16)):
                    n *= max(int(t.Shape(j)), 1)
                if n > MAX_TENSOR_BYTES:
                    name = (t.Name() or b"?").decode(errors="replace")[:80]
                    dims = [int(t.Shape(j)) for j in range(min(t.ShapeLength(), 16))]
                    raise ModelError(f"tensor {name!r} claims shape {dims} ({n / 2**30:.1f} GiB); "
                                     "damaged, or not a model for this device")
    except ModelError:
        raise
    except Exception:  # noqa: BLE001  unreadable for this reader: LiteRT's verifier decides
        return


def _spec(d: dict) -> TensorSpec:
    sig = d.get("shape_signature")
    dims = sig if sig is not None and len(sig) else d["shape"]
    scale, zp = d.get("quantization", (0.0, 0))
    dtype = np.dtype(d["dtype"])
    q = np.issubdtype(dtype, np.integer)
    return TensorSpec(d["name"], tuple(None if int(v) < 0 else int(v) for v in dims), dtype,
                      float(scale) if q and scale else None, int(zp) if q else None)


def open_interpreter(model, threads: int | None = 1, xnnpack: bool = True, **kw):
    """An Interpreter for a file path or the model's bytes. xnnpack False: TFLite's own builtin
    kernels without the default XNNPACK delegate (experiments compare the two arithmetics);
    threads None: LiteRT's default. `kw` goes to the Interpreter as is."""
    if not xnnpack:
        if OpResolverType is None:
            raise ModelError("this LiteRT has no choice of op resolver; it runs XNNPACK as built")
        kw["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    where = ({"model_content": bytes(model)} if isinstance(model, (bytes, bytearray, memoryview))
             else {"model_path": os.fspath(model)})
    return Interpreter(**where, num_threads=threads, **kw)


class LiteRTBackend(Backend):
    format = "tflite"

    def __init__(self, it, normalization, layout_hint):
        ins, outs = it.get_input_details(), it.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise ModelError(f"expected 1 input and 1 output, model has {len(ins)} and {len(outs)}")
        self._it, self._ii, self._oi = it, ins[0]["index"], outs[0]["index"]
        inp = _spec(ins[0])
        super().__init__(inp, _spec(outs[0]), guess_layout(inp.shape, layout_hint), normalization)
        self.batch = int(ins[0]["shape"][0])
        self._bind()

    @classmethod
    def load(cls, path, threads=1, normalization=NORMALIZATION, layout_hint=None,
             input_quant=None, output_quant=None, int8_kernels="auto", xnnpack: bool = True):
        # input_quant/output_quant (the manifest's copies) are deliberately ignored: a TFLite
        # model carries its own scale and zero point, and those are the ones that are right.
        # int8_kernels too: LiteRT offers no choice of integer kernels. xnnpack False runs
        # TFLite's builtin kernels instead of the default delegate (open_interpreter).
        check_flatbuffer(path)
        try:
            it = open_interpreter(path, threads, xnnpack)
            it.allocate_tensors()
        except (ValueError, RuntimeError, OSError) as e:
            raise ModelError(f"LiteRT cannot load it: {one_line(e, with_type=False)}") from None
        try:
            return cls(it, normalization, layout_hint)
        except (ValueError, RuntimeError, UnicodeDecodeError) as e:  # damaged tensor metadata
            raise ModelError(f"LiteRT cannot read its inputs/outputs: {one_line(e)}") from None

    def _bind(self) -> None:
        it, ii, oi = self._it, self._ii, self._oi
        set_tensor, invoke, get_tensor = it.set_tensor, it.invoke, it.get_tensor

        def infer(x):
            set_tensor(ii, x)
            invoke()
            return get_tensor(oi)

        def set_input(x):
            set_tensor(ii, x)

        self.infer, self.invoke_raw, self.set_input = infer, invoke, set_input

    def set_batch(self, n: int) -> bool:
        if n == self.batch:
            return True
        it, rest = self._it, list(self.input.shape[1:])
        try:
            # strict=False also lets a fixed batch of 1 grow where the graph allows it;
            # the output check below catches graphs that accept it but compute nonsense
            it.resize_tensor_input(self._ii, [n, *rest], strict=False)
            it.allocate_tensors()
            out = it.get_tensor(self._oi)
            if out.shape[0] != n:
                raise ValueError(f"output batch {out.shape[0]} != {n}")
        except (ValueError, RuntimeError):
            it.resize_tensor_input(self._ii, [self.batch, *rest], strict=False)
            it.allocate_tensors()
            return False
        self.batch = n
        return True

    def close(self) -> None:
        self._it = None
        self.infer = self.invoke_raw = self.set_input = None


BACKEND = LiteRTBackend
