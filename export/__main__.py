"""python -m export --format tflite: convert a trained run to device models plus a bundle."""
from __future__ import annotations

import os
import sys

from runtime.cli import DefaultsHelp, Parser, config_from_args, floats


def parse(argv=None):
    p = Parser(
        prog="python -m export",
        description="Export a trained run (model.keras) to TFLite or ONNX, float and quantized, with "
                    "op allow-list checks and parity against the Keras model on the full test split. "
                    "Writes FORMAT files, test.npz, reference.npz, config.json and manifest.json "
                    "(docs/bundle.md) into the export folder; exporting another format into the "
                    "same folder adds to its manifest.",
        epilog="modes: tflite float32 float16 dynamic int8 qat; onnx float32 dynamic int8.  "
               "Example: python -m export --format tflite --quant float32 int8 --run runs/seed-tanhexp-s0",
        formatter_class=DefaultsHelp)
    w = p.add_argument_group("what to export")
    w.add_argument("--format", required=True, metavar="{tflite,onnx}", help="target format")
    w.add_argument("--quant", nargs="+", default=None, metavar="MODE",
                   help="one or more modes (space or comma separated); default: every mode of the format")
    io = p.add_argument_group("input and output")
    io.add_argument("--run", default=None, metavar="RUN_DIR",
                    help="run folder from `python -m train` (default: the newest under runs/ by metrics.json time)")
    io.add_argument("--out", default=None, metavar="DIR",
                    help="export folder (default: RUN/export, or NAME-keras-export beside --model NAME.keras)")
    b = p.add_argument_group("a model you bring (instead of --run)")
    b.add_argument("--model", default=None, metavar="FILE",
                   help="any single-input tf_keras image classifier: .keras, .h5 or a SavedModel folder. TanhExp is "
                        "found as the TanhExp layer, activation='tanhexp' or a plain function named tanhexp; "
                        "nothing else custom is loaded (no code is read from the file)")
    b.add_argument("--data", default=None, metavar="SOURCE",
                   help="images and labels, any source python -m train reads (default: the shipped CIFAR-10): "
                        "calibration and QAT from its training split, parity on its test split; images are "
                        "resized to the model's input (bilinear) when their size differs")
    b.add_argument("--input-scale", type=float, default=None, metavar="S",
                   help="model input = pixel * S + OFFSET, pixel in 0..255 (default: 1/255, what train uses)")
    b.add_argument("--input-offset", type=float, default=None, metavar="OFFSET", help="see --input-scale (default 0)")
    b.add_argument("--mean", type=floats, default=None, metavar="M[,M]",
                   help="instead: model input = (pixel / 255 - mean) / std per channel, e.g. 0.485,0.456,0.406")
    b.add_argument("--std", type=floats, default=None, metavar="S[,S]", help="with --mean, e.g. 0.229,0.224,0.225")
    q = p.add_argument_group("quantization")
    q.add_argument("--calib-size", type=int, default=500, metavar="N",
                   help="calibration images for int8, a seeded sample of the training split")
    q.add_argument("--calib-seed", type=int, default=0, metavar="SEED", help="seed of the calibration sample (and of QAT)")
    q.add_argument("--per-tensor", action="store_true", help="ONNX int8: per-tensor instead of per-channel weights")
    tl = p.add_argument_group("tflite")
    tl.add_argument("--tflite-calib-percentile", type=float, default=None, metavar="P",
                    help="TFLite int8: activation ranges from the P-th percentile of the calibration values "
                         "(e.g. 99.99) instead of the converter's min/max (export/tflite_ranges.py)")
    tl.add_argument("--tflite-float-layers", default=None, metavar="L[,L]",
                    help="TFLite int8: keep these Keras layers in float, the rest int8, input and output still "
                         "int8 (export/tflite_select.py). E.g. conv1 for an x86 CPU without VNNI, where the int8 "
                         "first convolution of an RGB model costs ~3x its float one")
    o = p.add_argument_group("onnx")
    o.add_argument("--opset", type=int, default=17, metavar="N", help="ONNX opset (13..18)")
    o.add_argument("--onnx-calib-percentile", type=float, default=None, metavar="P",
                   help="ONNX int8: activation ranges from the P-th percentile of the calibration values "
                        "(e.g. 99.99) instead of their min/max (docs/results.md: helps ResNet-8)")
    t = p.add_argument_group("quantization-aware training (--quant qat)")
    t.add_argument("--qat-epochs", type=int, default=2, metavar="N", help="fine-tuning epochs on the run's training split")
    t.add_argument("--qat-lr", type=float, default=1e-4, metavar="LR", help="Adam learning rate")
    t.add_argument("--qat-batch-size", type=int, default=100, metavar="N", help="QAT batch size")
    m = p.add_argument_group("measurement")
    m.add_argument("--parity-batch", type=int, default=500, metavar="N", help="images per interpreter call for parity")
    m.add_argument("--max-dp", type=float, default=2e-5, metavar="D",
                   help="parity check of float32 files: pass when max |p - p_keras| over the test split <= D "
                        "(room for a runtime's own float arithmetic)")
    m.add_argument("--max-drop-pt", type=float, default=0.3, metavar="PT",
                   help="parity check of float16, dynamic, int8 and qat files: pass when the test accuracy is at "
                        "most PT points below the Keras model's (top-1 agreement is reported beside it)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    from export.config import ExportConfig
    from export.errors import ExportError

    quant = [m for item in (args.quant or []) for m in item.split(",") if m]
    if args.quant is not None and not quant:
        print("error: --quant names no mode; leave it out for every mode of the format", file=sys.stderr)
        return 2
    if args.tflite_float_layers is not None and not args.tflite_float_layers.strip(","):
        print("error: --tflite-float-layers names no layer; leave it out for an all-int8 model", file=sys.stderr)
        return 2
    cfg = config_from_args(ExportConfig, args, quant=quant, per_channel=not args.per_tensor,
                           tflite_float_layers=[n for n in (args.tflite_float_layers or "").split(",") if n])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: keep stderr readable
    try:
        from export.api import export
        from export.parity import table
        manifest = export(cfg)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # e.g. the disk filled up while writing the manifest
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    print(table(manifest, cfg.max_dp, cfg.max_drop_pt))
    return 0


if __name__ == "__main__":
    from runtime.quietlog import native_logs_filtered
    with native_logs_filtered():  # TensorFlow's native log lines would bury a one-line error
        sys.exit(main())
