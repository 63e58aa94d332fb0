"""The export stage's one config, written as config.json into the export folder.

Validation needs only the format table's names, so a bad command line is rejected before
TensorFlow is imported.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from export.errors import BadInput

OPSETS = range(13, 19)  # tf2onnx 1.17 converts to opset 13..18
# ONNX static int8 activation type: uint8 by default because ONNX Runtime's x86 optimizer turns
# int8 activations into uint8 pairwise (QDQS8ToU8), and skips a Q whose output feeds several
# DequantizeLinear nodes (TanhExp uses its input three times). The conv before it then has a uint8
# input and an int8 output, so it is not fused into QLinearConv and runs as float between Q/DQ
# (docs/results.md). Same 256 levels of the same range: same accuracy.
ONNX_ACTIVATIONS = {"uint8": "QUInt8", "int8": "QInt8"}  # -> onnxruntime.quantization.QuantType
QAT_TARGET_NAMES = ("labels", "float")  # export.qat.QAT_TARGETS' keys (checked by a test), without loading tfmot


def ranges_label(percentile: float | None) -> str:
    """How int8 activation ranges were calibrated, as the manifest records it (and as the
    study compares it, to re-export a model calibrated otherwise). Both formats use it."""
    return "min/max" if percentile is None else f"percentile {percentile:g}"


def percentile_error(percentile: float | None, flag: str = "--onnx-calib-percentile") -> str | None:
    if percentile is None or 50 < percentile <= 100:
        return None
    return f"{flag} must be in (50, 100], got {percentile}"


@dataclass
class ExportConfig:
    format: str = "tflite"                 # key of export.formats.FORMATS
    quant: list[str] = field(default_factory=list)  # modes; empty -> every mode of the format
    run: str | None = None                 # run folder; None -> newest under runs/ (metrics.json mtime)
    model: str | None = None               # or a model file people bring (.keras, .h5, SavedModel folder)
    data: str | None = None                # with model: any python -m train --data source (None: the shipped copy)
    input_scale: float | None = None       # with model: float input = pixel * scale + offset (None: 1/255, 0)
    input_offset: float | None = None
    mean: list[float] | None = None        # with model, instead: (pixel / 255 - mean) / std per channel
    std: list[float] | None = None
    out: str | None = None                 # export folder; None -> RUN/export, or MODEL's name + "-export"
    calib_size: int = 500                  # calibration images, a seeded sample of the TRAINING split
    calib_seed: int = 0
    per_channel: bool = True               # ONNX static int8: per-channel weight scales
    opset: int = 17
    onnx_calib_percentile: float | None = None  # ONNX static int8: None -> min/max ranges, else this percentile
    tflite_calib_percentile: float | None = None  # TFLite int8: the same (export/tflite_ranges.py)
    tflite_float_layers: list[str] = field(default_factory=list)  # TFLite int8: Keras layers kept in float (export/tflite_select.py)
    onnx_activations: str = "uint8"        # ONNX static int8: activation type (ONNX_ACTIVATIONS); int8 is for experiments
    qat_epochs: int = 2
    qat_lr: float = 1e-4                   # small: QAT fine-tunes a trained model, it does not retrain it
    qat_batch_size: int = 100
    qat_target: str = "labels"             # what QAT fits: "labels"; "float" (self-distillation) was rejected, for experiments
    parity_batch: int = 500                # images per interpreter call when the model allows a batch
    max_dp: float = 2e-5                   # parity check of float32 files: max |dp| against Keras
    max_drop_pt: float = 0.3               # parity check of every other mode: accuracy drop, points
    runs_root: str = "runs"                # where --run is looked for when omitted

    def modes(self) -> list[str]:
        from export.formats import FORMATS
        return list(self.quant) or list(FORMATS[self.format])

    def validate(self) -> None:
        from export.formats import FORMATS
        if self.format not in FORMATS:
            raise BadInput(f"unknown format {self.format!r}; choose from {', '.join(FORMATS)}")
        supported = FORMATS[self.format]
        for mode in self.quant:
            if mode not in supported:
                known = sorted({m for modes in FORMATS.values() for m in modes})
                why = "unknown mode" if mode not in known else f"{self.format} has no mode"
                raise BadInput(f"{why} {mode!r}; {self.format} supports {', '.join(supported)}")
        if len(set(self.quant)) != len(self.quant):
            raise BadInput(f"--quant lists a mode twice: {' '.join(self.quant)}")
        pct_error = (percentile_error(self.onnx_calib_percentile)
                     or percentile_error(self.tflite_calib_percentile, "--tflite-calib-percentile"))
        given = [n for n in ("data", "input_scale", "input_offset", "mean", "std") if getattr(self, n) is not None]
        if self.run and self.model:
            raise BadInput("give --run or --model, not both")
        if given and not self.model:
            raise BadInput(f"--{given[0].replace('_', '-')} goes with --model; a run folder brings its own data and "
                           "normalization")
        try:
            self.normalization()
        except ValueError as e:
            raise BadInput(str(e)) from None
        checks = [
            (self.calib_size > 0, f"--calib-size must be > 0, got {self.calib_size}"),
            (self.calib_seed >= 0, f"--calib-seed must be >= 0, got {self.calib_seed}"),
            (self.opset in OPSETS, f"--opset must be in {OPSETS.start}..{OPSETS.stop - 1}, got {self.opset}"),
            (pct_error is None, pct_error),
            (self.onnx_activations in ONNX_ACTIVATIONS,
             f"onnx_activations must be one of {', '.join(ONNX_ACTIVATIONS)}, got {self.onnx_activations!r}"),
            (self.qat_epochs > 0, f"--qat-epochs must be > 0, got {self.qat_epochs}"),
            (self.qat_lr > 0 and math.isfinite(self.qat_lr), f"--qat-lr must be a finite number > 0, got {self.qat_lr}"),
            (self.qat_batch_size > 0, f"--qat-batch-size must be > 0, got {self.qat_batch_size}"),
            (self.qat_target in QAT_TARGET_NAMES,
             f"qat_target must be one of {', '.join(QAT_TARGET_NAMES)}, got {self.qat_target!r}"),
            (self.parity_batch > 0, f"--parity-batch must be > 0, got {self.parity_batch}"),
            (self.max_dp >= 0 and math.isfinite(self.max_dp), f"--max-dp must be a finite number >= 0, got {self.max_dp}"),
            (self.max_drop_pt >= 0 and math.isfinite(self.max_drop_pt),
             f"--max-drop-pt must be a finite number >= 0, got {self.max_drop_pt}"),
        ]
        dup = sorted({n for n in self.tflite_float_layers if self.tflite_float_layers.count(n) > 1})
        checks.append((not dup, f"--tflite-float-layers lists a layer twice: {', '.join(dup)}"))
        checks.append((not self.tflite_float_layers or (self.format == "tflite" and "int8" in self.modes()),
                       "--tflite-float-layers applies to --format tflite with the int8 mode only"))
        for ok, msg in checks:
            if not ok:
                raise BadInput(msg)

    def normalization(self) -> tuple:
        """(scale, offset) from uint8 pixels to the model's input (runtime.backends.normalize)."""
        from runtime.backends import normalization_from
        return normalization_from(self.input_scale, self.input_offset, self.mean, self.std)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
