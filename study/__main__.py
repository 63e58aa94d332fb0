"""python -m study: train, export and bench every cell, then write the report."""
from __future__ import annotations

import argparse
import sys

from runtime.cli import DefaultsHelp, Parser, config_from_args


def _names(s: str) -> list[str]:
    return [x for x in s.split(",") if x]


def parser() -> Parser:
    p = Parser(
        prog="python -m study",
        description="The whole TanhExp-vs-ReLU study in one command: for each architecture, recipe, "
                    "seed and activation, train (python -m train), export every format and precision "
                    "(python -m export), benchmark (python -m runtime.bench), then write OUT/report.md "
                    "with plots and OUT/study.json. Work already done is skipped, so rerunning after an "
                    "interruption continues where it stopped. The per-architecture settings chosen on "
                    "validation (ResNet-8: one seed of strong-sgd, its int8 calibration) are the defaults; "
                    "other settings (validation size, calibration, QAT epochs, the convergence thresholds) "
                    "go in a --config file.",
        epilog="Examples: the study docs/results.md reports: python -m study --seeds 3 --archs seed,resnet8 "
               "--mixed-precision.  Rerun a study from what it wrote: python -m study --config "
               "docs/study/config.json.  End-to-end check in seconds: python -m study --quick --data DIR --out /tmp/q",
        formatter_class=DefaultsHelp)
    c = p.add_argument_group("cells")
    c.add_argument("--acts", type=_names, default=["tanhexp", "relu"], metavar="A[,A]",
                   help="activations; the paired comparison is first minus second")
    c.add_argument("--archs", type=_names, default=["seed"], metavar="A[,A]", help="architectures (seed, resnet8)")
    c.add_argument("--recipes", type=_names, default=["seed", "strong"], metavar="R[,R]",
                   help="recipes (seed, strong); ResNet-8 runs strong-sgd whatever this says")
    c.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds 0..N-1 per cell (>= 3 for statistics; ResNet-8: 1)")
    c.add_argument("--epochs", type=int, default=None, metavar="N",
                   help="epochs for every run (default: 50 for seed, 140 for resnet8)")
    d = p.add_argument_group("data and folders")
    d.add_argument("--data", default=None, help="as python -m train --data (default: the shipped JPEG CIFAR-10)")
    d.add_argument("--runs-dir", default=None, metavar="DIR",
                   help="where run folders live (default: runs/, so hand-trained runs are reused; OUT/runs with --quick)")
    d.add_argument("--out", default="docs/study", metavar="DIR", help="study folder: report.md, plots, study.json, bench/")
    d.add_argument("--config", default=None, metavar="FILE",
                   help="a JSON object of study settings (the config.json a study writes, or a part of it); "
                        "the options given here win over it")
    e = p.add_argument_group("export and bench")
    e.add_argument("--formats", type=_names, default=["tflite", "onnx"], metavar="F[,F]", help="export formats")
    e.add_argument("--modes", type=_names, default=None, metavar="M[,M]", help="only these modes (default: all)")
    e.add_argument("--bench-runs", type=int, default=300, metavar="N", help="timed single-image calls per model")
    e.add_argument("--threads", type=int, default=1, metavar="N", help="runtime threads in the bench")
    m = p.add_argument_group("modes")
    m.add_argument("--quick", action="store_true",
                   help="300 training images, 1 epoch, float32+int8 only, short bench: checks the pipeline, not the science")
    m.add_argument("--deterministic", action="store_true", help="pass --deterministic to training")
    m.add_argument("--mixed-precision", action="store_true",
                   help="pass --mixed-precision to the runs still to train (bfloat16 on a CPU with it); "
                        "finished runs are reused whatever their precision, and the report says which")
    return p


def parse(argv=None) -> tuple[argparse.Namespace, set[str]]:
    """The parsed options and the names of those given on the command line (they beat --config)."""
    p = parser()
    args = p.parse_args(argv)
    for action in p._actions:  # parse again without defaults: what is left was typed
        action.default = argparse.SUPPRESS
    given = set(vars(p.parse_args(argv)))
    return args, given


def config(args: argparse.Namespace, given: set[str]):
    """StudyConfig from its defaults, then the --config file, then the options typed."""
    from study.config import StudyConfig
    kw = StudyConfig.fields_from_file(args.config) if args.config else {}
    kw.update({k: v for k, v in vars(args).items() if k in given or k not in kw})
    return config_from_args(StudyConfig, argparse.Namespace(**kw))


def main(argv=None) -> int:
    args, given = parse(argv)
    from study.run import StudyError, study

    try:
        cfg = config(args, given)
        cfg.validate()
    except (ValueError, TypeError) as e:  # TypeError: a --config value of the wrong kind
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    try:
        results = study(cfg)
    except (ValueError, StudyError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1 if isinstance(e, StudyError) else 2
    except OSError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again to continue", file=sys.stderr)
        return 130
    n = len(results["cells"])
    print(f"study of {n} cells written to {cfg.out}/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
