"""python -m study: train, export and bench every cell, then write the report."""
from __future__ import annotations

import argparse
import sys
from runtime.cli import Parser


def _arch_value(convert, metavar: str):
    """An ARCH=VALUE parser for the repeatable per-architecture options; the value's range is
    checked with the rest of the config (StudyConfig.validate)."""
    def parse(s: str) -> tuple[str, object]:
        arch, sep, v = s.partition("=")
        try:
            return arch, convert(v if sep else "x")
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected ARCH={metavar}, got {s!r}") from None
    return parse


def _arch_recipes(s: str) -> tuple[str, list[str]]:
    arch, sep, names = s.partition("=")
    if not (sep and arch and _names(names)):
        raise argparse.ArgumentTypeError(f"expected ARCH=R[,R], got {s!r}")
    return arch, _names(names)


def _names(s: str) -> list[str]:
    return [x for x in s.split(",") if x]


def parse(argv=None):
    p = Parser(
        prog="python -m study",
        description="The whole TanhExp-vs-ReLU study in one command: for each architecture, recipe, "
                    "seed and activation, train (python -m train), export every format and precision "
                    "(python -m export), benchmark (python -m runtime.bench), then write OUT/report.md "
                    "with plots and OUT/study.json. Work already done is skipped, so rerunning after an "
                    "interruption continues where it stopped.",
        epilog="Example (the full study, ResNet-8 calibrated as docs/results.md chose): python -m study --seeds 3 --recipes seed,strong --archs seed,resnet8 "
               "--arch-seeds resnet8=1 --arch-recipes resnet8=strong-sgd --mixed-precision --onnx-calib-percentile 99.99 "
               "--arch-calib-size resnet8=2000 --arch-tflite-calib-percentile resnet8=99.99.  End-to-end check in seconds: python -m study --quick --data DIR --out /tmp/q",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    c = p.add_argument_group("cells")
    c.add_argument("--acts", type=_names, default=["tanhexp", "relu"], metavar="A[,A]",
                   help="activations; the paired comparison is first minus second")
    c.add_argument("--archs", type=_names, default=["seed"], metavar="A[,A]", help="architectures (seed, resnet8)")
    c.add_argument("--recipes", type=_names, default=["seed", "strong"], metavar="R[,R]", help="recipes (seed, strong)")
    c.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds 0..N-1 per cell (>= 3 for statistics)")
    c.add_argument("--arch-seeds", type=_arch_value(int, "N"), action="append", default=[], metavar="ARCH=N",
                   help="fewer (or more) seeds for one architecture, e.g. resnet8=1 (repeatable)")
    c.add_argument("--arch-recipes", type=_arch_recipes, action="append", default=[], metavar="ARCH=R[,R]",
                   help="other recipes for one architecture, e.g. resnet8=strong-sgd (repeatable)")
    c.add_argument("--epochs", type=int, default=None, metavar="N",
                   help="epochs for every run (default: 50 for seed, 140 for resnet8)")
    d = p.add_argument_group("data and runs")
    d.add_argument("--data", default=None, help="as python -m train --data (default: the shipped JPEG CIFAR-10)")
    d.add_argument("--val-size", type=int, default=5000, metavar="N", help="validation images carved from train")
    d.add_argument("--runs-dir", default=None, metavar="DIR",
                   help="where run folders live (default: runs/, so hand-trained runs are reused; OUT/runs with --quick)")
    d.add_argument("--out", default="docs/study", metavar="DIR", help="study folder: report.md, plots, study.json, bench/")
    e = p.add_argument_group("export and bench")
    e.add_argument("--formats", type=_names, default=["tflite", "onnx"], metavar="F[,F]", help="export formats")
    e.add_argument("--modes", type=_names, default=None, metavar="M[,M]", help="only these modes (default: all)")
    e.add_argument("--calib-size", type=int, default=500, metavar="N", help="int8 calibration images (training split)")
    e.add_argument("--arch-calib-size", type=_arch_value(int, "N"), action="append", default=[], metavar="ARCH=N",
                   help="calibration images for one architecture's int8 and QAT models in every format, e.g. "
                        "resnet8=2000 for its percentile ranges: a bigger sample steadies a percentile but "
                        "stretches min/max (repeatable)")
    e.add_argument("--qat-epochs", type=int, default=2, metavar="N", help="quantization-aware fine-tuning epochs")
    e.add_argument("--onnx-calib-percentile", type=float, default=None, metavar="P",
                   help="ONNX int8 activation ranges at the P-th percentile of the calibration values "
                        "(default: min/max); cells exported with other ranges are re-exported")
    e.add_argument("--tflite-calib-percentile", type=float, default=None, metavar="P",
                   help="TFLite int8 activation ranges at the P-th and (100-P)-th percentiles of the calibration "
                        "values (default: min/max, which one extreme value can stretch); cells exported with "
                        "other ranges are re-exported")
    e.add_argument("--arch-onnx-calib-percentile", type=_arch_value(float, "P"), action="append", default=[],
                   metavar="ARCH=P", help="--onnx-calib-percentile for one architecture (repeatable)")
    e.add_argument("--arch-tflite-calib-percentile", type=_arch_value(float, "P"), action="append", default=[],
                   metavar="ARCH=P",
                   help="--tflite-calib-percentile for one architecture, e.g. resnet8=99.99: with 2,000 images "
                        "it held ResNet-8's int8 drop at 0.30 +- 0.10 pt where min/max lost 0.43-0.61 (its "
                        "residual adds); the seed nets gain little (docs/results.md) (repeatable)")
    e.add_argument("--bench-runs", type=int, default=300, metavar="N", help="timed single-image calls per model")
    e.add_argument("--threads", type=int, default=1, metavar="N", help="runtime threads in the bench")
    r = p.add_argument_group("report")
    r.add_argument("--thresholds", type=lambda s: [float(x) for x in _names(s)], default=None, metavar="T[,T]",
                   help="validation accuracies for the convergence table (default: 0.50 to 0.85)")
    m = p.add_argument_group("modes")
    m.add_argument("--quick", action="store_true",
                   help="300 training images, 1 epoch, float32+int8 only, short bench: checks the pipeline, not the science")
    m.add_argument("--deterministic", action="store_true", help="pass --deterministic to training")
    m.add_argument("--mixed-precision", action="store_true",
                   help="pass --mixed-precision to the runs still to train (bfloat16 on a CPU with it); "
                        "finished runs are reused whatever their precision, and the report says which")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    from study.config import StudyConfig
    from study.run import StudyError, study

    kw = dict(acts=args.acts, archs=args.archs, recipes=args.recipes, seeds=args.seeds,
              arch_seeds=dict(args.arch_seeds), arch_recipes=dict(args.arch_recipes), epochs=args.epochs, formats=args.formats, modes=args.modes,
              data=args.data, runs_dir=args.runs_dir, out=args.out, calib_size=args.calib_size,
              arch_calib_size=dict(args.arch_calib_size), qat_epochs=args.qat_epochs,
              onnx_calib_percentile=args.onnx_calib_percentile, tflite_calib_percentile=args.tflite_calib_percentile,
              arch_onnx_calib_percentile=dict(args.arch_onnx_calib_percentile),
              arch_tflite_calib_percentile=dict(args.arch_tflite_calib_percentile),
              bench_runs=args.bench_runs, threads=args.threads,
              val_size=args.val_size, quick=args.quick, deterministic=args.deterministic,
              mixed_precision=args.mixed_precision)
    if args.thresholds:
        kw["thresholds"] = args.thresholds
    try:
        cfg = StudyConfig(**kw)
        cfg.validate()
        results = study(cfg)
    except (ValueError, StudyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ValueError) else 1
    except OSError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again to continue", file=sys.stderr)
        return 130
    n = len(results["cells"])
    print(f"study of {n} cells written to {args.out}/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
