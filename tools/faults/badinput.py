"""The bad-input matrix: every option of every CLI with a wrong value, in one table.

    python -m tools.faults.badinput [--json PATH] [--only SUBSTRING] [--quick] [--keep DIR]

Each case is (name, CLI argv, setup that plants the bad condition in the case's sandbox,
what the error line must name). tools/faults/harness.py runs and judges them: non-zero exit, one
`error:` line on stderr naming the problem, no traceback, the user's earlier results
(planted by the setup: a finished run, an export bundle, a bench --json, a report) still
byte-identical, no temporary file left. `--quick` skips the cases that import TensorFlow.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from tools.faults import fixtures as F
from tools.faults.harness import REPO, Case, Fixtures, run_case
from tools.faults.steps import (copytree, data, edit_json, exported, full, fx, npz, put, pyb, readonly, rehash, remove,
                          run_data, steps, truncate, unreadable, zip_without_keras_members)
from runtime.fileio import write_json
from runtime.cli import Parser

def maker(prefix: str, cli: str, default_setup):
    """Case(f"{prefix}-{name}", cli, ...) with the CLI's usual "earlier results" as setup."""
    def make(name, argv, says, setup=default_setup, **kw):
        return Case(f"{prefix}-{name}", cli, argv, says, setup, **kw)
    return make


EARLIER_RUN = fx("run", "runs/seed-tanhexp-s0")  # the default --out of `python -m train`
DISK_FULL = r"No space left on device|File too large"  # a full tmpfs, or the RLIMIT_FSIZE fallback
READ_ONLY = r"Read-only file system|Permission denied"  # a read-only mount, or the chmod fallback
GARBAGE = b"\x00not what it claims to be\xff" * 8

# --- the table ---------------------------------------------------------------------------

TRAIN = ["--data", "{fx}/data", "--val-size", "10", "--epochs", "1", "--batch-size", "10", "--verbose", "2"]
TRAIN_NEW = [*TRAIN, "--out", "{d}/new"]  # a fresh run folder (the earlier run stays aside)


def train_cases():
    T = maker("train", "train", EARLIER_RUN)
    opt = [
        ("act-unknown", ["--act", "swish"], r"--act 'swish'"),
        ("arch-unknown", ["--arch", "vgg16"], r"--arch 'vgg16'"),
        ("recipe-unknown", ["--recipe", "fancy"], r"--recipe 'fancy'"),
        ("epochs-zero", ["--epochs", "0"], r"--epochs"),
        ("epochs-negative", ["--epochs", "-5"], r"--epochs"),
        ("epochs-not-int", ["--epochs", "ten"], r"--epochs.*'ten'"),
        ("batch-size-zero", ["--batch-size", "0"], r"--batch-size"),
        ("batch-size-negative", ["--batch-size", "-100"], r"--batch-size"),
        ("lr-zero", ["--lr", "0"], r"--lr"),
        ("lr-negative", ["--lr", "-0.001"], r"--lr"),
        ("lr-nan", ["--lr", "nan"], r"--lr"),
        ("lr-inf", ["--lr", "inf"], r"--lr"),
        ("lr-not-number", ["--lr", "fast"], r"--lr.*'fast'"),
        ("seed-negative", ["--seed", "-1"], r"--seed"),
        ("seed-not-int", ["--seed", "1.5"], r"--seed.*'1.5'"),
        ("val-size-negative", ["--val-size", "-1"], r"--val-size"),
        ("limit-train-zero", ["--limit-train", "0"], r"--limit-train"),
        ("limit-train-negative", ["--limit-train", "-10"], r"--limit-train"),
        ("verbose-bad", ["--verbose", "3"], r"--verbose"),
        ("unknown-option", ["--learning-rate", "0.1"], r"unrecognized arguments: --learning-rate"),
    ]
    cases = [T(n, [*TRAIN, *a], s, what=f"train {' '.join(a)}") for n, a, s in opt]
    d = lambda name, spec, says, setup, tf=True, **kw: T(  # noqa: E731
        name, [*TRAIN_NEW, "--data", spec], says, steps(EARLIER_RUN, setup), tf=tf, **kw)
    cases += [
        d("data-missing", "{d}/nope", r"data path not found: .*nope", put("x", ""), tf=False),
        T("data-env-missing", [a for a in TRAIN_NEW if a not in ("--data", "{fx}/data")],
          r"data path not found: .*nope", env={"EDGECNN_DATA": "/nonexistent/nope"}, what="EDGECNN_DATA missing path"),
        d("data-unsupported-file", "{d}/cifar.zip", r"unsupported data file.*cifar\.zip", put("cifar.zip", GARBAGE),
          tf=False),
        d("data-archive-not-tar", "{d}/cifar.tar.gz", r"cifar\.tar\.gz.*(unreadable|truncated)",
          put("cifar.tar.gz", GARBAGE),
          tf=False),
        d("data-truncated-archive", "{d}/cifar.tar.gz", r"cifar\.tar\.gz.*(unreadable|truncated)",
          steps(data("src"), lambda c: F.tar(c.p("src"), c.p("cifar.tar.gz")), truncate("cifar.tar.gz", 0.6))),
        d("data-empty-dir", "{d}/empty", r"no images found", lambda c: c.p("empty").mkdir()),
        d("data-missing-class", "{d}/cifar", r"no images for class.*\bcat\b", data("cifar", skip_class="cat")),
        d("data-extra-class", "{d}/cifar", r"test/ has no images for class.*\bunicorn\b", data("cifar", extra_class="unicorn")),
        d("data-wrong-image-size", "{d}/cifar", r"9999\.png is 16x16", data("cifar", odd_size=16)),
        d("data-not-an-image", "{d}/cifar", r"train/cat/0003\.png.*not a readable image",
          steps(data("cifar"), put("cifar/train/cat/0003.png", GARBAGE))),
        d("data-unreadable-image", "{d}/cifar", r"cannot read .*0003\.png: Permission denied",
          steps(data("cifar"), unreadable("cifar/train/cat/0003.png"))),
        d("data-unreadable-folder", "{d}/cifar", r"cannot read .*train/cat: Permission denied",
          steps(data("cifar"), unreadable("cifar/train/cat"))),
        d("data-archive-missing-class", "{d}/cifar.tar", r"no images for class.*\bdog\b",
          steps(data("src", skip_class="dog"), lambda c: F.tar(c.p("src"), c.p("cifar.tar")))),
        d("data-pybatches-missing-batch", "{d}/cifar-10-batches-py", r"missing batch file.*data_batch_3",
          pyb("cifar-10-batches-py", skip="data_batch_3")),
        d("data-pybatches-hostile-pickle", "{d}/cifar-10-batches-py", r"refusing to load posix\.system",
          steps(pyb("cifar-10-batches-py"), lambda c: F.hostile_pickle(c.p("cifar-10-batches-py/data_batch_2")))),
        d("data-pybatches-wrong-image-size", "{d}/cifar-10-batches-py", r"not a CIFAR-10 python batch",
          pyb("cifar-10-batches-py", row_len=1024)),
        d("data-pybatches-bad-labels", "{d}/cifar-10-batches-py", r"outside 0\.\.9",
          pyb("cifar-10-batches-py", labels_offset=10)),
        T("val-size-too-large", [*TRAIN_NEW, "--val-size", "1000"], r"--val-size 1000 leaves no training images",
          tf=True),
        T("out-is-a-file", [*TRAIN, "--out", "{d}/notes.txt"], r"notes\.txt is a file, not a folder",
          steps(EARLIER_RUN, put("notes.txt", "my notes")), tf=True),
        T("out-parent-is-a-file", [*TRAIN, "--out", "{d}/notes.txt/run"], r"notes\.txt",
          steps(EARLIER_RUN, put("notes.txt", "my notes")), tf=True),
        T("out-holds-another-run", [*TRAIN, "--lr", "0.01"], r"holds a different run", tf=True),
        T("out-not-a-run-folder", [*TRAIN, "--out", "{d}/photos"], r"photos is not empty",
          steps(EARLIER_RUN, put("photos/cat.jpg", GARBAGE)), tf=True),
        T("out-config-corrupt", [*TRAIN, "--out", "{d}/r"], r"r/config\.json is unreadable",
          steps(EARLIER_RUN, put("r/config.json", "{not json"), put("r/metrics.json", "{}")), tf=True),
        T("out-config-not-an-object", [*TRAIN, "--out", "{d}/r"], r"r/config\.json is unreadable",
          steps(EARLIER_RUN, put("r/config.json", "[1, 2]")), tf=True),
        T("out-read-only", [*TRAIN, "--out", "{d}/ro/run"], rf"({READ_ONLY}): .*ro/run",
          steps(EARLIER_RUN, put("ro/earlier.txt", "earlier"), readonly("ro")), tf=True),
        T("out-disk-full", [*TRAIN, "--out", "{d}/full/run"], DISK_FULL,
          steps(EARLIER_RUN, full("full", 16, then=[put("full/earlier.txt", "earlier results")])), tf=True,
          allow_new=("full/run", "full/run/*", "full/run/*/*", "full/run/*/*/*"), what="--out on a full disk"),
    ]
    return cases


EXPORT = ["--format", "tflite", "--run", "{d}/run", "--out", "{d}/run/export"]
EARLIER_EXPORT = steps(fx("run", "run"), fx("bundle", "run/export"))


def export_cases():
    X = maker("export", "export", EARLIER_EXPORT)
    opt = [
        ("format-unknown", ["--format", "coreml"], r"unknown format 'coreml'"),
        ("format-empty", ["--format", ""], r"unknown format ''"),
        ("quant-unknown", ["--quant", "int4"], r"unknown mode 'int4'"),
        ("quant-wrong-format", ["--format", "onnx", "--quant", "qat"], r"onnx has no mode 'qat'"),
        ("quant-twice", ["--quant", "int8,int8"], r"--quant lists a mode twice"),
        ("quant-empty", ["--quant", ","], r"--quant"),
        ("calib-size-zero", ["--calib-size", "0"], r"--calib-size"),
        ("calib-size-negative", ["--calib-size", "-500"], r"--calib-size"),
        ("calib-size-not-int", ["--calib-size", "many"], r"--calib-size.*'many'"),
        ("calib-seed-negative", ["--calib-seed", "-1"], r"--calib-seed"),
        ("opset-too-low", ["--format", "onnx", "--opset", "12"], r"--opset"),
        ("opset-too-high", ["--format", "onnx", "--opset", "19"], r"--opset"),
        ("opset-not-int", ["--format", "onnx", "--opset", "latest"], r"--opset.*'latest'"),
        ("qat-epochs-zero", ["--qat-epochs", "0"], r"--qat-epochs"),
        ("qat-lr-zero", ["--qat-lr", "0"], r"--qat-lr"),
        ("qat-lr-negative", ["--qat-lr", "-1e-4"], r"--qat-lr"),
        ("qat-lr-inf", ["--qat-lr", "inf"], r"--qat-lr"),
        ("qat-lr-nan", ["--qat-lr", "nan"], r"--qat-lr"),
        ("qat-batch-size-zero", ["--qat-batch-size", "0"], r"--qat-batch-size"),
        ("parity-batch-zero", ["--parity-batch", "0"], r"--parity-batch"),
        ("tflite-float-layers-empty", ["--tflite-float-layers", ","], r"--tflite-float-layers names no layer"),
        ("tflite-float-layers-twice", ["--tflite-float-layers", "conv1,conv1"], r"lists a layer twice: conv1"),
        ("tflite-float-layers-no-int8", ["--quant", "float32", "--tflite-float-layers", "conv1"],
         r"--tflite-float-layers applies to --format tflite with the int8 mode only"),
        ("parity-batch-negative", ["--parity-batch", "-1"], r"--parity-batch"),
        ("unknown-option", ["--quantize", "int8"], r"unrecognized arguments: --quantize"),
    ]
    cases = [X(n, [*EXPORT, *a], s, what=f"export {' '.join(a)}") for n, a, s in opt]
    cases.append(X("format-missing", ["--run", "{d}/run"], r"required: --format", what="no --format"))
    run = lambda name, run_setup, says, argv=(), **kw: X(  # noqa: E731
        name, [*EXPORT, "--out", "{d}/export", *argv], says,
        steps(fx("run", "run"), fx("bundle", "earlier-export"), run_setup), **kw)
    cases += [
        run("run-missing", lambda c: None, r"run folder not found: .*nope", ["--run", "{d}/nope"]),
        run("run-is-a-file", put("afile", "x"), r"run folder not found: .*afile", ["--run", "{d}/afile"]),
        run("run-no-config", lambda c: c.p("run/config.json").unlink(), r"has no config\.json"),
        run("run-config-corrupt", put("run/config.json", "{oops"), r"config\.json: unreadable"),
        run("run-config-missing-key", edit_json("run/config.json", lambda c: c.pop("act")), r"missing 'act'"),
        run("run-no-model", lambda c: c.p("run/model.keras").unlink(), r"model not found: .*model\.keras"),
        run("run-model-garbage", put("run/model.keras", GARBAGE), r"model\.keras: corrupt or not a Keras model"),
        run("run-model-truncated", truncate("run/model.keras", 0.7), r"model\.keras: corrupt"),
        run("run-model-not-keras", zip_without_keras_members("run/model.keras"),
            r"not a Keras model file \(missing config\.json"),
        run("run-model-unreadable", unreadable("run/model.keras"), r"model\.keras.*(ermission|cannot read)"),
        run("run-model-does-not-load", lambda c: None, r"model\.keras: cannot load the Keras model", tf=True),
        run("run-data-missing", run_data("run", "/nonexistent/cifar"), r"data path not found: /nonexistent/cifar"),
        run("run-data-missing-class", steps(data("cifar", skip_class="cat"), run_data("run", "{d}/cifar")),
            r"no images for class.*\bcat\b"),
        run("run-data-wrong-image-size", steps(data("cifar", odd_size=48), run_data("run", "{d}/cifar")),
            r"9999\.png is 48x48"),
        X("no-runs", ["--format", "tflite"], r"no finished run under runs/", fx("bundle", "earlier-export"),
          what="no --run and no runs/"),
        X("out-is-a-file", [*EXPORT, "--out", "{d}/notes.txt"], r"notes\.txt",
          steps(EARLIER_EXPORT, put("notes.txt", "my notes"))),
        X("out-read-only", [*EXPORT, "--out", "{d}/ro/export"], r"cannot write to output folder .*ro/export",
          steps(EARLIER_EXPORT, put("ro/earlier.txt", "earlier"), readonly("ro"))),
        X("out-holds-another-model", EXPORT, r"holds an export of a different model"),
        X("out-manifest-corrupt", EXPORT, r"manifest\.json: unreadable",
          steps(EARLIER_EXPORT, put("run/export/manifest.json", "{\"schema\": "))),
        X("out-manifest-wrong-schema", EXPORT, r"not an edge-bundle/1 manifest",
          steps(EARLIER_EXPORT, edit_json("run/export/manifest.json", lambda m: m.update(schema="other/9")))),
        X("out-disk-full", ["--format", "tflite", "--quant", "float32", "--run", "{d}/run", "--out", "{d}/full/export",
                            "--calib-size", "10", "--parity-batch", "10"], DISK_FULL,
          steps(fx("real-run", "run"), full("full", 0, then=[put("full/earlier.txt", "earlier results")])), tf=True,
          what="--out on a full disk (new bundle)"),
        X("out-disk-full-earlier-bundle", ["--format", "tflite", "--quant", "float16", "--run", "{d}/run", "--out",
                                           "{d}/full/export", "--calib-size", "10", "--parity-batch", "10"],
          DISK_FULL,
          steps(fx("real-run", "run"), exported("run", "earlier", "float32"),
                full("full", 0, then=[copytree("earlier", "full/export")])), tf=True,
          what="--out on a full disk holding the run's earlier bundle"),
    ]
    return cases


BENCH = ["--bundle", "{d}/bundle", "--no-progress", "--json", "{d}/earlier.json"]
EARLIER_BENCH = steps(fx("bundle", "bundle"), fx("result.json", "earlier.json"))


def bench_cases():
    B = maker("bench", "runtime.bench", EARLIER_BENCH)
    opt = [
        ("formats-unknown", ["--formats", "coreml"], r"coreml"),
        ("modes-unknown", ["--modes", "int4"], r"int4"),
        ("formats-match-nothing", ["--formats", "onnx"], r"nothing to benchmark"),
        ("limit-zero", ["--limit", "0"], r"--limit"),
        ("limit-negative", ["--limit", "-5"], r"--limit"),
        ("limit-not-int", ["--limit", "all"], r"--limit.*'all'"),
        ("threads-zero", ["--threads", "0"], r"--threads"),
        ("threads-negative", ["--threads", "-2"], r"--threads"),
        ("warmup-negative", ["--warmup", "-1"], r"--warmup"),
        ("runs-zero", ["--runs", "0"], r"--runs"),
        ("runs-not-int", ["--runs", "1e3"], r"--runs.*'1e3'"),
        ("runs-and-min-seconds", ["--runs", "10", "--min-seconds", "1"],
         r"--min-seconds.*--runs|--runs.*--min-seconds"),
        ("min-seconds-zero", ["--min-seconds", "0"], r"--min-seconds"),
        ("min-seconds-negative", ["--min-seconds", "-1"], r"--min-seconds"),
        ("min-seconds-nan", ["--min-seconds", "nan"], r"--min-seconds"),
        ("min-seconds-inf", ["--min-seconds", "inf"], r"--min-seconds"),
        ("batch-zero", ["--batch", "0"], r"--batch"),
        ("timeout-zero", ["--timeout", "0"], r"--timeout"),
        ("timeout-negative", ["--timeout", "-3"], r"--timeout"),
        ("data-with-bundle", ["--data", "{d}/bundle/test.npz"], r"--data/--reference go with --model"),
        ("unknown-option", ["--repeat", "3"], r"unrecognized arguments: --repeat"),
    ]
    cases = [B(n, [*BENCH, *a], s, what=f"bench {' '.join(a)}") for n, a, s in opt]
    cases += [
        B("no-source", ["--no-progress"], r"one of the arguments --bundle --model is required"),
        B("bundle-and-model", [*BENCH, "--model", "{d}/bundle/float32.tflite"], r"not allowed with argument"),
        B("bundle-missing", [*BENCH, "--bundle", "{d}/nope"], r"bundle not found: .*nope"),
        B("bundle-is-a-file", [*BENCH, "--bundle", "{d}/earlier.json"], r"bundle not found: .*earlier\.json"),
        B("manifest-missing", BENCH, r"no manifest\.json in", steps(EARLIER_BENCH, remove("bundle/manifest.json"))),
        B("manifest-not-json", BENCH, r"manifest\.json: not valid JSON",
          steps(EARLIER_BENCH, put("bundle/manifest.json", "{]"))),
        B("manifest-wrong-schema", BENCH, r"schema 'edge-bench/1' is not 'edge-bundle/1'",
          steps(EARLIER_BENCH, edit_json("bundle/manifest.json", lambda m: m.update(schema="edge-bench/1")))),
        B("manifest-artifacts-not-a-list", BENCH, r"'artifacts' must be a list",
          steps(EARLIER_BENCH, edit_json("bundle/manifest.json", lambda m: m.update(artifacts={"a": 1})))),
        B("manifest-path-escapes-bundle", BENCH, r"test_split: file name '\.\./earlier\.json' must be a bare name",
          steps(EARLIER_BENCH,
                edit_json("bundle/manifest.json", lambda m: m["test_split"].update(file="../earlier.json")))),
        B("manifest-unreadable", BENCH, r"manifest\.json.*(ermission|cannot read)",
          steps(EARLIER_BENCH, unreadable("bundle/manifest.json"))),
        B("test-split-missing", BENCH, r"test_split file missing", steps(EARLIER_BENCH, remove("bundle/test.npz"))),
        B("test-split-damaged", BENCH, r"test\.npz: sha256 does not match",
          steps(EARLIER_BENCH, truncate("bundle/test.npz", 0.9))),
        B("test-split-not-npz", BENCH, r"test\.npz: cannot read as \.npz",
          steps(EARLIER_BENCH, put("bundle/test.npz", GARBAGE), rehash("bundle"))),
        B("test-split-float-images", BENCH, r"x must be uint8",
          steps(EARLIER_BENCH, npz("bundle/test.npz", x=lambda: __import__("numpy").zeros((20, 32, 32, 3), "float32")),
                rehash("bundle"))),
        B("reference-too-short", BENCH, r"reference\.npz: probs must be float",
          steps(EARLIER_BENCH, npz("bundle/reference.npz", probs=lambda: __import__("numpy").zeros((5, 10), "float32")),
                rehash("bundle"))),
        B("test-split-wrong-image-size", ["--bundle", "{d}/bundle", "--no-progress", "--runs", "5", "--warmup", "1"],
          r"float32\.tflite.*16, 16, 3|16x16",
          steps(fx("real-bundle", "bundle"),
                npz("bundle/test.npz", x=lambda: F.images(20, 4, 16)[0], y=lambda: F.images(20, 4, 16)[1]),
                rehash("bundle")), tf=True, what="bundle test images 16x16 (model wants 32x32)"),
        B("model-damaged", ["--bundle", "{d}/bundle", "--no-progress"], r"float32\.tflite: sha256 does not match",
          steps(fx("bundle", "bundle"), put("bundle/float32.tflite", b"TFL3" + bytes(61)))),
        B("model-not-a-model", ["--bundle", "{d}/bundle", "--no-progress"], r"float32\.tflite",
          fx("bundle", "bundle")),
        B("model-missing", ["--model", "{d}/nope.tflite", "--no-progress"], r"model file not found: .*nope\.tflite",
          None),
        B("model-unknown-suffix", ["--model", "{d}/m.pb", "--no-progress"], r"unknown model format '\.pb'",
          put("m.pb", GARBAGE)),
        B("model-data-missing", ["--model", "{d}/bundle/float32.tflite", "--data", "{d}/nope.npz", "--no-progress"],
          r"data not found: .*nope\.npz"),
        B("model-data-not-npz", ["--model", "{d}/bundle/float32.tflite", "--data", "{d}/earlier.json", "--no-progress"],
          r"earlier\.json: cannot read as \.npz"),
        B("model-reference-missing",
          ["--model", "{d}/bundle/float32.tflite", "--reference", "{d}/nope.npz", "--no-progress"],
          r"reference file not found"),
        B("json-read-only", [*BENCH, "--json", "{d}/ro/earlier.json"], r"ro/earlier\.json.*([Rr]ead-only|ermission)",
          steps(EARLIER_BENCH, fx("result.json", "ro/earlier.json"), readonly("ro"))),
        B("json-is-a-folder", [*BENCH, "--json", "{d}/bundle"], r"bundle.*(s a directory|folder)"),
        B("json-parent-is-a-file", [*BENCH, "--json", "{d}/earlier.json/x.json"], r"earlier\.json"),
        B("json-disk-full", ["--bundle", "{d}/bundle", "--no-progress", "--runs", "5", "--warmup", "1", "--json",
                             "{d}/full/earlier.json"], DISK_FULL,
          steps(fx("real-bundle", "bundle"), full("full", 0, then=[fx("result.json", "full/earlier.json")])), tf=True,
          what="--json on a full disk holding the earlier result"),
        B("save-probs-read-only", [*BENCH, "--save-probs", "{d}/ro/probs.npz"],
          r"ro/probs\.npz.*([Rr]ead-only|ermission)",
          steps(EARLIER_BENCH, put("ro/probs.npz", GARBAGE), readonly("ro"))),
        B("save-probs-disk-full", ["--bundle", "{d}/bundle", "--no-progress", "--runs", "5", "--warmup", "1",
                                   "--save-probs", "{d}/full/probs.npz"], DISK_FULL,
          steps(fx("real-bundle", "bundle"), full("full", 0, then=[put("full/probs.npz", GARBAGE)])), tf=True,
          what="--save-probs on a full disk holding earlier probabilities"),
    ]
    return cases


REPORT = ["{d}/a.json", "--out", "{d}/report"]


def earlier_report(ctx, rel="report"):
    put(f"{rel}/report.md", "# my earlier report\n")(ctx)
    put(f"{rel}/latency_vs_accuracy.png", b"\x89PNG earlier plot")(ctx)


EARLIER_REPORT = steps(fx("result.json", "a.json"), earlier_report)


def report_cases():
    R = maker("report", "runtime.report", EARLIER_REPORT)
    def bad(name, change, says):
        return R(name, REPORT, says, steps(EARLIER_REPORT, edit_json("a.json", change)))
    return [
        R("no-arguments", [], r"required"),
        R("no-out", ["{d}/a.json"], r"required: --out"),
        R("unknown-option", [*REPORT, "--format", "html"], r"unrecognized arguments: --format"),
        R("result-missing", ["{d}/nope.json", "--out", "{d}/report"], r"result file not found: .*nope\.json"),
        R("result-not-json", REPORT, r"a\.json: not valid JSON", steps(EARLIER_REPORT, put("a.json", "{rows: ["))),
        R("result-empty", REPORT, r"a\.json: not valid JSON", steps(EARLIER_REPORT, put("a.json", ""))),
        R("result-is-a-folder", ["{d}/report", "--out", "{d}/report2"], r"report.*(s a directory|folder)"),
        R("result-unreadable", REPORT, r"a\.json.*(ermission|cannot read)",
          steps(EARLIER_REPORT, unreadable("a.json"))),
        bad("result-wrong-schema", lambda d: d.update(schema="edge-bundle/1"), r"not an edge-bench/1 result"),
        bad("result-rows-not-objects", lambda d: d.update(rows=[1, 2]), r"a\.json.*row"),
        bad("result-row-missing-keys", lambda d: d.update(rows=[{"file": "x.tflite"}]), r"a\.json.*row"),
        bad("result-row-wrong-types", lambda d: d["rows"][0].update(latency_ms_p50="fast"), r"a\.json.*latency_ms_p50"),
        R("max-drop-negative", [*REPORT, "--max-drop", "-1"], r"--max-drop must be in \[0, 100\)"),
        R("max-drop-not-a-number", [*REPORT, "--max-drop", "lots"], r"--max-drop.*'lots'"),
        R("out-is-a-file", ["{d}/a.json", "--out", "{d}/a.json"], r"a\.json"),
        R("out-read-only", ["{d}/a.json", "--out", "{d}/report"], r"report.*([Rr]ead-only|ermission)",
          steps(EARLIER_REPORT, readonly("report"))),
        R("out-disk-full", ["{d}/a.json", "--out", "{d}/full"], DISK_FULL,
          steps(fx("result.json", "a.json"), full("full", 8, then=[lambda c: earlier_report(c, "full")])),
          what="--out on a full disk holding an earlier report"),
    ]


def profile_cases():
    P = maker("profile", "runtime.profile", steps())
    model = steps(put("m.tflite", GARBAGE))
    return [
        P("no-arguments", [], r"required"),
        P("model-missing", ["{d}/nope.tflite"], r"model not found: .*nope\.tflite"),
        P("model-is-a-folder", ["{d}/dir.tflite"], r"dir\.tflite is a folder", steps(put("dir.tflite/x", "x"))),
        P("model-wrong-suffix", ["{d}/notes.txt"], r"notes\.txt: not a \.tflite or \.onnx file",
          steps(put("notes.txt", "hello"))),
        P("model-garbage-tflite", ["{d}/m.tflite"], r"not a TFLite model", model),
        P("model-garbage-onnx", ["{d}/m.onnx"], r"ONNX Runtime cannot load it", steps(put("m.onnx", GARBAGE))),
        P("model-unreadable", ["{d}/m.tflite"], r"cannot read .*m\.tflite.*ermission",
          steps(put("m.tflite", GARBAGE), unreadable("m.tflite"))),
        P("runs-zero", ["{d}/m.tflite", "--runs", "0"], r"--runs.*must be >= 1", model),
        P("runs-not-int", ["{d}/m.tflite", "--runs", "many"], r"--runs.*'many'", model),
        P("threads-negative", ["{d}/m.tflite", "--threads", "-2"], r"--threads.*must be >= 1", model),
        P("unknown-option", ["{d}/m.tflite", "--kernels", "xnnpack"], r"unrecognized arguments: --kernels", model),
        P("json-read-only", ["{d}/m.tflite", "--json", "{d}/ro/p.json"], r"ro/p\.json.*([Rr]ead-only|ermission)",
          steps(put("m.tflite", GARBAGE), put("ro/p.json", "{}"), readonly("ro"))),
        P("json-is-a-folder", ["{d}/m.tflite", "--json", "{d}/out"], r"out.*(s a directory|folder)",
          steps(put("m.tflite", GARBAGE), put("out/x", "x"))),
    ]


SPEED = ["--data", "{fx}/data", "--rounds", "1", "--chunk", "100", "--limit", "100", "--json", "{d}/earlier.json"]
EARLIER_SPEED = put("earlier.json", {"speedup": 1.5, "note": "an earlier result"})


def speed_cases():
    S = maker("speed", "experiments.bench_speed", EARLIER_SPEED)
    opt = [
        ("act-unknown", ["--act", "swish"], r"--act.*'swish'"),
        ("rounds-zero", ["--rounds", "0"], r"--rounds"),
        ("rounds-negative", ["--rounds", "-1"], r"--rounds"),
        ("rounds-not-int", ["--rounds", "many"], r"--rounds.*'many'"),
        ("chunk-too-small", ["--chunk", "50"], r"--chunk"),
        ("chunk-negative", ["--chunk", "-100"], r"--chunk"),
        ("limit-zero", ["--limit", "0"], r"--limit"),
        ("unknown-option", ["--epochs", "3"], r"unrecognized arguments: --epochs"),
        ("data-missing", ["--data", "{d}/nope"], r"data path not found: .*nope"),
        ("json-read-only", ["--json", "{d}/ro/earlier.json"], r"ro/earlier\.json.*([Rr]ead-only|ermission)"),
        ("json-is-a-folder", ["--json", "{d}/tmp"], r"tmp.*(s a directory|folder)"),
    ]
    cases = [S(n, [*SPEED, *a], s, steps(EARLIER_SPEED, put("ro/earlier.json", "{}"), readonly("ro"))
               if "read-only" in n else EARLIER_SPEED, what=f"bench_speed {' '.join(a)}") for n, a, s in opt]
    cases.append(S("data-missing-class", [*SPEED, "--data", "{d}/cifar"], r"no images for class.*\bcat\b",
                   steps(EARLIER_SPEED, data("cifar", skip_class="cat")), tf=True))
    return cases


LOWER = ["--tanhexp-run", "{d}/run", "--relu-run", "{d}/run", "--out", "{d}/earlier.json"]
EARLIER_LOWER = steps(fx("run", "run"), put("earlier.json", {"best_on_val": "elu3", "note": "an earlier result"}))


def lowering_cases():
    L = maker("lowering", "experiments.lowering_bench", EARLIER_LOWER)
    opt = [
        ("candidates-empty", ["--candidates", ","], r"--candidates"),
        ("calib-size-zero", ["--calib-size", "0"], r"--calib-size"),
        ("calib-size-negative", ["--calib-size", "-1"], r"--calib-size"),
        ("calib-seed-negative", ["--calib-seed", "-1"], r"--calib-seed"),
        ("extra-calib-size-negative", ["--extra-calib-size", "-1"], r"--extra-calib-size"),
        ("rounds-zero", ["--rounds", "0"], r"--rounds"),
        ("rounds-not-int", ["--rounds", "x"], r"--rounds.*'x'"),
        ("per-round-zero", ["--per-round", "0"], r"--per-round"),
        ("unknown-option", ["--model", "elu3"], r"unrecognized arguments: --model"),
        ("run-missing", ["--relu-run", "{d}/nope"], r"nope"),
        ("out-is-a-folder", ["--out", "{d}/run"], r"run.*(s a directory|folder)"),
    ]
    cases = [L(n, [*LOWER, *a], s, what=f"lowering_bench {' '.join(a)}") for n, a, s in opt]
    cases += [
        L("runs-missing", [], r"required: --tanhexp-run, --relu-run"),
        L("run-no-model", LOWER, r"model\.keras", steps(EARLIER_LOWER, lambda c: c.p("run/model.keras").unlink())),
        L("run-model-garbage", LOWER, r"model\.keras: corrupt", steps(EARLIER_LOWER, put("run/model.keras", GARBAGE))),
        L("run-data-missing", LOWER, r"data path not found: /nonexistent",
          steps(EARLIER_LOWER, run_data("run", "/nonexistent/x"))),
        L("out-read-only", [*LOWER, "--out", "{d}/ro/earlier.json"], r"ro/earlier\.json.*([Rr]ead-only|ermission)",
          steps(EARLIER_LOWER, put("ro/earlier.json", "{}"), readonly("ro"))),
        L("candidates-unknown", [*LOWER, "--candidates", "magic"], r"unknown lowering.*magic", tf=True),
        L("run-model-does-not-load", LOWER, r"model\.keras: cannot load the Keras model", tf=True),
    ]
    return cases


# A whole (tiny) study if nothing were wrong: one seed, one act, 1 epoch, float32 only. Not
# --quick: it overrides --epochs, --bench-runs, --modes and the settings in tiny.json.
STUDY = ["--data", "{fx}/data", "--out", "{d}/study", "--seeds", "1", "--acts", "relu", "--recipes", "seed",
         "--formats", "tflite", "--modes", "float32", "--epochs", "1", "--bench-runs", "5", "--config", "{d}/tiny.json"]
TINY_STUDY = {"val_size": 10, "calib_size": 10, "qat_epochs": 1}
EARLIER_STUDY = steps(put("study/report.md", "# my earlier study\n"), put("study/study.json", {"cells": []}),
                      put("tiny.json", TINY_STUDY))


def study_config(**kw):
    """A setup step: tiny.json with these settings changed, or text=... as the whole file."""
    return steps(EARLIER_STUDY, put("tiny.json", kw.pop("text") if "text" in kw else {**TINY_STUDY, **kw}))


def study_cases():
    """`python -m study` (the whole study in one command), if this checkout has it."""
    if not (REPO / "study" / "__main__.py").is_file():
        return []
    Y = maker("study", "study", EARLIER_STUDY)
    opt = [
        ("seeds-zero", ["--seeds", "0"], r"--seeds"),
        ("seeds-negative", ["--seeds", "-3"], r"--seeds"),
        ("seeds-not-int", ["--seeds", "three"], r"--seeds.*'three'"),
        ("acts-unknown", ["--acts", "relu,swish"], r"--acts.*swish"),
        ("acts-empty", ["--acts", ","], r"--acts"),
        ("archs-unknown", ["--archs", "vgg16"], r"--archs.*vgg16"),
        ("recipes-unknown", ["--recipes", "fancy"], r"--recipes.*fancy"),
        ("epochs-zero", ["--epochs", "0"], r"--epochs"),
        ("formats-unknown", ["--formats", "coreml"], r"--formats.*coreml"),
        ("bench-runs-zero", ["--bench-runs", "0"], r"--bench-runs"),
        ("threads-zero", ["--threads", "0"], r"--threads"),
        ("unknown-option", ["--learning-rate", "0.1"], r"unrecognized arguments: --learning-rate"),
        ("config-missing", ["--config", "{d}/nope.json"], r"--config .*nope\.json"),
        ("quick-overrides-epochs", ["--quick", "--epochs", "0"], r"--epochs"),
        ("data-missing", ["--data", "{d}/nope"], r"nope"),
        ("out-is-a-file", ["--out", "{d}/study/report.md"], r"report\.md"),
        ("runs-dir-is-a-file", ["--runs-dir", "{d}/study/report.md"], r"report\.md"),
    ]
    cases = [Y(n, [*STUDY, *a], s, what=f"study {' '.join(a)}") for n, a, s in opt]
    # Settings without a flag, in the --config file
    conf = [
        ("config-not-json", dict(text="{val_size: 10"), r"--config .*tiny\.json: not JSON"),
        ("config-not-an-object", dict(text="[1, 2]"), r"want a JSON object"),
        ("config-unknown-setting", dict(val_sise=10), r"unknown settings val_sise"),
        ("config-arch-seeds-unknown-arch", dict(arch_seeds={"vgg": 1}), r"arch_seeds.*vgg"),
        ("config-arch-seeds-zero", dict(arch_seeds={"seed": 0}), r"arch_seeds counts"),
        ("config-arch-calib-size-unknown-arch", dict(arch_calib_size={"vgg": 2000}), r"arch_calib_size.*vgg"),
        ("config-tflite-calib-percentile-out-of-range", dict(tflite_calib_percentile=50), r"tflite_calib_percentile"),
        ("config-arch-tflite-calib-percentile-out-of-range", dict(arch_tflite_calib_percentile={"resnet8": 101}),
         r"arch_tflite_calib_percentile resnet8"),
        ("config-val-size-negative", dict(val_size=-1), r"val_size"),
        ("config-calib-size-zero", dict(calib_size=0), r"calib_size"),
        ("config-calib-size-not-int", dict(calib_size="many"), r"calib_size must be an integer, got 'many'"),
        ("config-qat-epochs-zero", dict(qat_epochs=0), r"qat_epochs"),
        ("config-thresholds-out-of-range", dict(thresholds=[0.5, 1.5]), r"thresholds"),
    ]
    cases += [Y(n, STUDY, s, study_config(**kw), what=f"study --config with {n.removeprefix('config-')}")
              for n, kw, s in conf]
    cases += [
        Y("out-read-only", [*STUDY, "--out", "{d}/ro/study"], rf"ro/study.*({READ_ONLY})",
          steps(EARLIER_STUDY, put("ro/study/report.md", "# earlier"), readonly("ro"))),
        Y("modes-unknown", [*STUDY, "--modes", "int4"], r"--modes.*int4", tf=True,
          allow_new=("runs", "runs/*", "runs/*/*", "runs/*/*/*", "runs/*/*/*/*")),
    ]
    return cases


def all_cases() -> list[Case]:
    cases = [*train_cases(), *export_cases(), *bench_cases(), *report_cases(), *profile_cases(),
             *speed_cases(), *lowering_cases(), *study_cases()]
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return cases


# --- runner ------------------------------------------------------------------------------

def run_matrix(cases, root: Path, log=print) -> dict:
    fx = Fixtures(root / "fixtures")
    fx.root.mkdir(parents=True, exist_ok=True)
    # Every shared fixture is made before the first case, so that their digest before and
    # after the matrix says whether a case wrote into one (they are passed by path, read-only).
    needs_tf = ("real-run", "real-bundle") if any(c.tf for c in cases) else ()
    for name in ("data", "run", "bundle", "result.json", *needs_tf):
        fx.get(name)
    digest0 = fx.digest()
    records = []
    for i, case in enumerate(cases, 1):
        rec = run_case(case, fx, root / "cases")
        records.append(rec)
        mark = "skip" if rec.get("skipped") else ("ok" if rec["clean"] else "FAIL")
        log(f"[{i}/{len(cases)}] {mark:4s} {case.name} ({rec.get('seconds', '-')} s)"
            + ("" if rec["clean"] is not False else f": {'; '.join(rec['problems'])}"))
    fixtures_intact = fx.digest() == digest0
    ran = [r for r in records if not r.get("skipped")]
    by_cli = {}
    for r in ran:
        c = by_cli.setdefault(r["cli"], {"cases": 0, "clean": 0, "strict_one_line": 0})
        c["cases"] += 1
        c["clean"] += bool(r["clean"])
        c["strict_one_line"] += bool(r["strict"])
    return {"cases": len(ran), "clean": sum(bool(r["clean"]) for r in ran),
            "strict_one_line": sum(bool(r["strict"]) for r in ran),
            "skipped": len(records) - len(ran), "fixtures_intact": fixtures_intact,
            "by_cli": by_cli, "records": records}


def table(summary: dict) -> str:
    rows = [f"{'case':42s} {'exit':>4s} {'clean':5s} {'1 line':6s} error line"]
    for r in summary["records"]:
        if r.get("skipped"):
            rows.append(f"{r['name']:42s} {'-':>4s} {'skip':5s} {'':6s} {r['skipped']}")
            continue
        rows.append(f"{r['name']:42s} {r['exit']:>4d} {'yes' if r['clean'] else 'NO':5s} "
                    f"{'yes' if r['strict'] else 'no':6s} {(r['error'] or '')[:110]}")
    rows.append("")
    for cli, c in summary["by_cli"].items():
        rows.append(f"{cli:24s} {c['clean']:3d} / {c['cases']:3d} clean, "
                    f"{c['strict_one_line']:3d} with stderr exactly one line")
    rows.append(f"{'total':24s} {summary['clean']:3d} / {summary['cases']:3d} clean, "
                f"{summary['strict_one_line']:3d} with stderr exactly one line; {summary['skipped']} skipped; "
                f"shared fixtures {'unchanged' if summary['fixtures_intact'] else 'CHANGED'}")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = Parser(prog="python -m tools.faults.badinput", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", metavar="PATH", help="write the results record here")
    p.add_argument("--only", metavar="TEXT", action="append", help="only cases whose name contains TEXT")
    p.add_argument("--quick", action="store_true", help="skip the cases that import TensorFlow")
    p.add_argument("--tf", action="store_true", help="only the cases that import TensorFlow")
    p.add_argument("--keep", metavar="DIR", help="work (and keep fixtures) in DIR instead of a temporary folder")
    a = p.parse_args(argv)
    cases = [c for c in all_cases() if (not a.only or any(t in c.name for t in a.only))
             and not (a.quick and c.tf) and not (a.tf and not c.tf)]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="badinput-") as tmp:
        root = Path(a.keep) if a.keep else Path(tmp)
        summary = run_matrix(cases, root, log=lambda m: print(m, file=sys.stderr, flush=True))
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    print(table(summary))
    if a.json:
        from runtime.provenance import provenance
        env = "FAULTS_NO_MOUNT=1 " if os.environ.get("FAULTS_NO_MOUNT") else ""
        doc = {"command": env + "python -m tools.faults.badinput " + " ".join(sys.argv[1:] if argv is None else argv),
               "what": "every CLI option with a wrong value; clean = non-zero exit, one 'error:' line "
                       "naming the problem (after the CLI's own progress lines, if any), no traceback, "
                       "earlier results byte-identical, nothing left behind",
               "as_root": os.geteuid() == 0, **summary, "provenance": provenance()}
        write_json(a.json, doc)
    return 0 if summary["clean"] == summary["cases"] and summary["fixtures_intact"] else 1


if __name__ == "__main__":
    sys.exit(main())
