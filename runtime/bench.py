"""python -m runtime.bench: measure exported models on this device.

A thin CLI over runtime.measure.run_bench. Exit codes: 0 every model measured, 1 some
model failed (its row says why), 2 the run itself could not start (bad arguments, no
bundle, bad manifest, damaged test split), 130 interrupted.
"""
from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from runtime.backends import INT8_KERNELS, OUTPUTS, normalization_from
from runtime.bundle import FORMATS, KNOWN_MODES
from runtime.errors import BenchError, one_line
from runtime.fileio import atomic_path, check_writable, write_json
from runtime.measure import BenchConfig, run_bench
from runtime.progress import progress
from runtime.table import bench_summary
from runtime.cli import Parser, floats


def _count(zero_ok=False):
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {s!r}") from None
        if v < (0 if zero_ok else 1):
            raise argparse.ArgumentTypeError(f"must be >= {0 if zero_ok else 1}: {v}")
        return v
    return parse


def _seconds(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0: {s}")
    return v


def _names(known):
    def parse(s: str) -> list[str]:
        names = [x for x in s.split(",") if x]
        bad = [x for x in names if x not in known]
        if bad or not names:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(map(repr, bad or [s]))}; choose from {', '.join(known)}")
        return names
    return parse


class _ExtendNames(argparse.Action):
    """`--modes float32 int8`, `--modes float32,int8` and repeated options all give one flat list,
    as `python -m export --quant` takes them."""

    def __call__(self, parser, ns, values, option_string=None):
        setattr(ns, self.dest, (getattr(ns, self.dest) or []) + [x for v in values for x in v])


def _dims(s: str) -> list[int]:
    try:
        dims = [int(x) for x in s.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {s!r}") from None
    if len(dims) != 4 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected 4 positive dims (N,H,W,C or N,C,H,W), got {s!r}")
    return dims


def _save(option: str, path: str, write) -> None:
    try:
        write()
    except OSError as e:  # e.g. the disk filled up: atomic writes keep the earlier file as it was
        raise BenchError(f"cannot write {option} {path}: {e.strerror or one_line(e)}") from None


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m runtime.bench", description="Measure exported models on this "
                "device: accuracy, agreement, latency, throughput, memory (docs/runtime.md).")
    what = p.add_argument_group("what to measure")
    src = what.add_mutually_exclusive_group(required=True)
    src.add_argument("--bundle", metavar="DIR", help="a device bundle: every artifact in its manifest")
    src.add_argument("--model", metavar="FILE", action="append", dest="models",
                     help="a bare .tflite/.onnx file (repeatable); no hashes to check")
    what.add_argument("--data", metavar="NPZ|FOLDER", help="with --model: an .npz of test images x "
                      "(uint8 NHWC) and labels y, or an image folder (or .tar/.tar.gz) with class "
                      "subfolders: its test/ split, or for a single folder the seeded split export "
                      "holds out; images are resized to the model's input (bilinear). Without it, "
                      "synthetic images (latency only)")
    what.add_argument("--reference", metavar="NPZ", help="with --model: reference probs for agreement")
    bare = p.add_argument_group("a model file's input (with --model; a bundle's manifest says these)")
    bare.add_argument("--input-shape", type=_dims, metavar="N,D,D,D",
                      help="the input shape to run, in the model's layout, fixing its dynamic dims: e.g. "
                      "1,3,224,224 for an NCHW ONNX model with input [-1, 3, ?, ?] (N is not used: the bench "
                      "batches as --batch says)")
    bare.add_argument("--layout", choices=("NHWC", "NCHW"), help="the input layout, if the model's shape "
                      "does not say it (default: read from the model: channels are the dim of 1, 3 or 4)")
    bare.add_argument("--input-scale", type=float, metavar="S",
                      help="model input = pixel * S + OFFSET, pixel in 0..255 (default: 1/255)")
    bare.add_argument("--input-offset", type=float, metavar="OFFSET", help="see --input-scale (default 0)")
    bare.add_argument("--mean", type=floats, metavar="M[,M]",
                      help="instead: (pixel / 255 - mean) / std per channel, e.g. 0.485,0.456,0.406")
    bare.add_argument("--std", type=floats, metavar="S[,S]", help="with --mean, e.g. 0.229,0.224,0.225")
    bare.add_argument("--outputs", choices=OUTPUTS, help="what the model outputs: probabilities "
                      "(default) or logits, which get a softmax so that |dp| and agreement compare "
                      "probabilities (accuracy is the argmax either way)")
    what.add_argument("--formats", type=_names(sorted(set(FORMATS.values()))), nargs="+",
                      action=_ExtendNames, metavar="F", help="only these formats (tflite, onnx), "
                      "space- or comma-separated")
    what.add_argument("--modes", type=_names(KNOWN_MODES), nargs="+", action=_ExtendNames, metavar="M",
                      help="only these modes (float32, float16, dynamic, int8, qat), space- or comma-separated")
    what.add_argument("--limit", type=_count(), metavar="N", help="only the first N test images")
    what.add_argument("--int8-kernels", choices=INT8_KERNELS, default="auto",
                      help="ONNX Runtime on x86 without VNNI adds int8 products in saturating 16-bit "
                      "pairs, which can wreck an int8 model's answers: auto (default) uses its exact, "
                      "slower kernels there; exact uses them everywhere; fast never (what a session "
                      "does unasked). Each row says which arithmetic ran (int8_arith)")

    t = p.add_argument_group("timing")
    t.add_argument("--threads", type=_count(), default=1, metavar="N", help="runtime threads (1)")
    t.add_argument("--warmup", type=_count(zero_ok=True), default=10, metavar="N", help="untimed calls first (10)")
    length = t.add_mutually_exclusive_group()
    length.add_argument("--runs", type=_count(), default=100, metavar="N", help="timed single-image calls (100)")
    length.add_argument("--min-seconds", type=_seconds, metavar="S",
                        help="time single-image calls for at least S seconds instead")
    t.add_argument("--batch", type=_count(), default=32, metavar="N",
                   help="images per call for accuracy and throughput (32)")
    t.add_argument("--in-process", action="store_true", help="measure all models in this "
                   "process (faster start; peak RSS then accumulates, a crash ends the run)")
    t.add_argument("--timeout", type=_seconds, metavar="S", help="per model (isolated runs)")

    out = p.add_argument_group("output")
    out.add_argument("--json", metavar="PATH", help="write the edge-bench/1 result document here")
    out.add_argument("--save-probs", metavar="NPZ", help="write each model's probabilities here")
    out.add_argument("--label", help="device label in results and reports (default: host name)")
    out.add_argument("--no-progress", action="store_true", help="no progress display on stderr")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.bundle and (a.data or a.reference):
        parser.error("--data/--reference go with --model; a bundle brings its own")
    given = [a.input_scale, a.input_offset, a.mean, a.std]
    try:
        norm = normalization_from(a.input_scale, a.input_offset, a.mean, a.std) if any(v is not None for v in given) \
            else None
    except ValueError as e:
        parser.error(str(e))
    cfg = BenchConfig(bundle=a.bundle, models=a.models or [], data=a.data, reference=a.reference,
                      input_shape=a.input_shape, layout=a.layout, normalization=norm,
                      formats=a.formats, modes=a.modes, limit=a.limit, threads=a.threads,
                      warmup=a.warmup, runs=a.runs, min_seconds=a.min_seconds, batch=a.batch,
                      isolate=not a.in_process, timeout=a.timeout, label=a.label,
                      int8_kernels=a.int8_kernels, outputs=a.outputs)
    try:
        for option, path in (("--json", a.json), ("--save-probs", a.save_probs)):
            if path:  # now, not after minutes of measuring
                _save(option, path, lambda: check_writable(path))
        result = run_bench(cfg, progress(not a.no_progress, lambda job: job.artifact.file))
        if a.json:
            _save("--json", a.json, lambda: write_json(a.json, result.doc))
        if a.save_probs:
            def probs():
                with atomic_path(a.save_probs) as tmp, open(tmp, "wb") as f:
                    np.savez(f, **result.probs)
            _save("--save-probs", a.save_probs, probs)
    except BenchError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # cannot write --json/--save-probs
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    print(bench_summary(result.doc))
    failed = [r for r in result.doc["rows"] if r["error"]]
    if failed:  # the table says which and why; stderr says that the run did not fully succeed
        print(f"error: {len(failed)} of {len(result.doc['rows'])} model(s) failed; first: "
              f"{failed[0]['file']}: {failed[0]['error']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
