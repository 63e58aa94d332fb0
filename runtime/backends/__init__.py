"""One interface over LiteRT and ONNX Runtime, looked up by format and imported lazily.

A device with only one runtime installed can still bench that format: the registry maps a
format to a module name, and only `get_backend(fmt)` imports it. A missing package raises
MissingRuntime (one line naming what to pip install), which becomes that model's error row.

Everything a backend needs to feed the model is read from the model (input shape, dtype,
quantization scale/zero point); the manifest only supplies the pixel normalization and,
where a format cannot say (integer inputs of an ONNX graph), a fallback quantization.

This is the one inference path: export measures parity through these same classes (with the
options it documents), so a manifest's parity is what a device computes. Layout (`guess_layout`),
pixel normalization (`normalize`) and integer I/O (`quantize`, `dequantize`) are defined here
and nowhere else.

The timed path is `infer(x)`: copy one prepared input in, invoke, copy the output out.
`prepare()` (normalize, quantize, transpose) and `postprocess()` (dequantize) are vectorized
over many images outside the timed loop, so the per-call Python cost is a few microseconds.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import numpy as np

from runtime.errors import MissingRuntime, ModelError

INT8_KERNELS = ("auto", "exact", "fast")
MAX_CALL_BYTES = 1 << 30  # one call's prepared input; CIFAR-size batches use a few MB
# float input = uint8 * scale + offset: pixels / 255, what train/ feeds Keras
NORMALIZATION = (1.0 / 255.0, 0.0)

# format -> (module, pip package named in the error when the module's runtime is missing)
REGISTRY: dict[str, tuple[str, str]] = {
    "tflite": ("runtime.backends.litert", "ai-edge-litert"),
    "onnx": ("runtime.backends.onnxrt", "onnxruntime"),
}


def get_backend(fmt: str) -> type["Backend"]:
    if fmt not in REGISTRY:
        raise ModelError(f"no backend for format {fmt!r} (known: {sorted(REGISTRY)})")
    module, package = REGISTRY[fmt]
    try:
        return importlib.import_module(module).BACKEND
    except ImportError:
        raise MissingRuntime(fmt, package) from None


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # batch first; None for a dynamic dimension
    dtype: np.dtype
    scale: float | None = None  # set for integer tensors: real = (q - zero_point) * scale
    zero_point: int | None = None

    @property
    def quantized(self) -> bool:
        return np.issubdtype(self.dtype, np.integer)


class Backend(ABC):
    """A loaded model. Subclasses set `infer`, `invoke_raw` and `set_input` as bound
    closures in `_bind()` (no attribute or dict lookups on the timed path)."""

    format: str = ""
    # "exact", or "saturating" where the runtime's integer kernels approximate on this CPU
    # (ONNX Runtime on x86 without VNNI, runtime.backends.onnxrt); None: the backend claims nothing
    int8_arith: str | None = None
    infer: Callable[[np.ndarray], np.ndarray]
    invoke_raw: Callable[[], object]
    set_input: Callable[[np.ndarray], None]

    def __init__(self, inp: TensorSpec, out: TensorSpec, layout: str,
                 normalization: tuple[float, float]):
        if inp.quantized and not inp.scale:
            raise ModelError(f"input {inp.name!r} is {np.dtype(inp.dtype).name} but its "
                             "quantization scale is unknown")
        if out.quantized and not out.scale:
            raise ModelError(f"output {out.name!r} is {np.dtype(out.dtype).name} but its "
                             "quantization scale is unknown")
        self.input, self.output, self.layout = inp, out, layout
        self.norm_scale, self.norm_offset = normalization
        self.batch = 1
        # What the model's output holds (OUTPUTS): "logits" are turned into probabilities here,
        # so accuracy, agreement and |dp| mean the same for either kind of model.
        self.outputs = "probabilities"

    @classmethod
    @abstractmethod
    def load(cls, path, threads: int | None = 1, normalization=NORMALIZATION, layout_hint=None,
             input_quant=None, output_quant=None, int8_kernels: str = "auto", **options) -> "Backend":
        """Load `path` (a file, or the model's bytes where the runtime takes them); raise
        ModelError with one line for anything wrong with it. threads None: the runtime's own
        default. int8_kernels (INT8_KERNELS): 'auto' exact integer arithmetic where the
        runtime's fast kernels approximate on this CPU, 'exact' always, 'fast' never (what the
        runtime does unasked). Backends without such a choice ignore it. `options` are the
        backend's own switches (LiteRT: xnnpack; ONNX Runtime: optimize)."""

    @abstractmethod
    def set_batch(self, n: int) -> bool:
        """Make the model take `n` images per call; False (batch unchanged) if it cannot."""

    def close(self) -> None:
        pass

    @property
    def image_shape(self) -> tuple:
        """(H, W, C) the model wants, in NHWC terms; None where dynamic."""
        s = self.input.shape
        return tuple(s[1:]) if self.layout == "NHWC" else (s[2], s[3], s[1])

    def check_images(self, hwc: tuple) -> None:
        want = self.image_shape
        if any(w is not None and w != h for w, h in zip(want, hwc)):
            raise ModelError(f"model input {self.layout} {list(self.input.shape)} does not fit "
                             f"images of shape {tuple(hwc)} (HWC)")
        # run() pads every call to a fixed batch; a damaged or hostile file can fix it at a
        # million images, and preparing those would exhaust memory long before any error
        per_call = self.batch * int(np.prod(hwc)) * 4  # float32 while preparing
        if per_call > MAX_CALL_BYTES:
            raise ModelError(f"model input {list(self.input.shape)} takes {self.batch} images per "
                             f"call ({per_call / 2**30:.1f} GiB); not a model for this device")

    def prepare(self, images: np.ndarray) -> np.ndarray:
        """Images -> what the model takes: normalized, quantized, in its layout. uint8 NHWC
        images are normalized first; float ones are taken as already normalized (the exact
        input a Keras model was given), which experiments use to feed both the same array."""
        x = images if np.issubdtype(images.dtype, np.floating) else \
            normalize(images, (self.norm_scale, self.norm_offset))
        spec = self.input
        if spec.quantized:
            x = quantize(x, spec.dtype, spec.scale, spec.zero_point)
        else:
            x = x.astype(spec.dtype, copy=False)
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x)

    def postprocess(self, raw: np.ndarray) -> np.ndarray:
        spec = self.output
        out = dequantize(raw, spec.scale, spec.zero_point) if spec.quantized else raw.astype(np.float32, copy=False)
        return softmax(out) if self.outputs == "logits" else out

    def run(self, images: np.ndarray, batch: int = 1) -> np.ndarray:
        """Probabilities for NHWC images (uint8, or normalized float: `prepare`), `batch` at a
        time where the model allows; `self.batch` then says how many each call took."""
        n = len(images)
        want = min(batch, n)
        if want <= 1 or not self.set_batch(want):
            self.set_batch(1)
        b = self.batch
        outs = []
        for i in range(0, n, b):
            chunk = images[i:i + b]
            k = len(chunk)
            if k < b:  # pad the tail rather than re-allocating the interpreter for it
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], b - k, axis=0)])
            raw = self.infer(self.prepare(chunk))
            outs.append(self.postprocess(raw.reshape(b, -1)[:k]))
        return np.concatenate(outs)


def guess_layout(shape: tuple, hint: str | None = None) -> str:
    """NHWC or NCHW from a rank-4 shape: channels are the small dimension (1, 3 or 4: grey,
    RGB, RGBA), read from the model's own input shape; `hint` (the manifest's) only breaks a tie."""
    if len(shape) != 4:
        raise ModelError(f"model input has rank {len(shape)} {list(shape)}; expected 4 (image batch)")
    last, second = shape[3], shape[1]
    if last in (1, 3, 4) and second not in (1, 3, 4):
        return "NHWC"
    if second in (1, 3, 4) and last not in (1, 3, 4):
        return "NCHW"
    return hint if hint in ("NHWC", "NCHW") else "NHWC"


OUTPUTS = ("probabilities", "logits")


def softmax(z: np.ndarray) -> np.ndarray:
    """Probabilities from logits (N, classes), in float64 then float32: one implementation for
    the Keras reference and every backend, so parity compares like with like."""
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def output_kind(out: np.ndarray, tol: float = 1e-3) -> str:
    """"probabilities" when every row is >= 0 and sums to 1 (a softmax head), else "logits"."""
    out = np.asarray(out, np.float64)
    return "probabilities" if out.size and out.min() >= -1e-6 and np.abs(out.sum(1) - 1).max() <= tol else "logits"


def normalize(images: np.ndarray, normalization=NORMALIZATION) -> np.ndarray:
    """uint8 pixels -> the model's float input, in float32 exactly as training fed Keras.
    scale and offset are numbers, or one per channel (the last axis of NHWC images)."""
    scale, offset = normalization
    return images.astype(np.float32) * np.asarray(scale, np.float32) + np.asarray(offset, np.float32)


def normalization_from(scale=None, offset=None, mean=None, std=None) -> tuple:
    """(scale, offset) for `normalize` from a user's pixel scale/offset (float = pixel * scale +
    offset), or from per-channel mean/std of pixels/255 (float = (pixel/255 - mean) / std, as
    torchvision and Keras applications state theirs). Neither: /255. Lists stay lists (JSON)."""
    if (mean is None) != (std is None):
        raise ValueError("--mean and --std go together")
    if mean is not None and (scale is not None or offset is not None):
        raise ValueError("give --mean/--std or --input-scale/--input-offset, not both")
    if mean is not None:
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f"--mean and --std need one value per channel each, std > 0; got {mean} and {std}")
        return [1.0 / (255.0 * s) for s in std], [-m / s for m, s in zip(mean, std)]
    return (NORMALIZATION[0] if scale is None else scale, NORMALIZATION[1] if offset is None else offset)


def quantize(x: np.ndarray, dtype, scale: float, zero_point: int) -> np.ndarray:
    """Real -> integer tensor, q = rint(x / scale) + zero_point clipped to the dtype, in float32:
    the float input quantized the way the converter's own QUANTIZE op would see it."""
    info = np.iinfo(dtype)
    x = np.asarray(x, dtype=np.float32)
    return np.clip(np.rint(x / np.float32(scale) + np.float32(zero_point)), info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Integer -> real: (q - zero_point) * scale, in float32."""
    return (q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
