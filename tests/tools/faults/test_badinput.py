"""The bad-input matrix (tools/faults/badinput.py), one test per case, plus the judge and the stderr
filter on their own.

Default suite: CORE, a spread of cases that exit before TensorFlow loads (~1 s each): at
least one of each kind (a bad option value, a broken input file, an unreadable file, a
read-only folder, a full disk) for every CLI. Everything else, and every case that imports
TensorFlow or needs a model it builds, is `slow` (`python -m pytest -m slow tests/tools/faults`;
all of it: `python -m tools.faults.badinput`).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.faults.badinput import all_cases
from tools.faults.harness import Case, Fixtures, judge, run_case, snapshot
from runtime import quietlog

REPO = Path(__file__).resolve().parents[3]

CORE = {
    "train-act-unknown", "train-epochs-zero", "train-epochs-not-int", "train-lr-inf", "train-seed-negative",
    "train-unknown-option", "train-data-missing", "train-data-unsupported-file", "train-data-archive-not-tar",
    "export-format-unknown", "export-quant-wrong-format", "export-quant-empty", "export-calib-size-negative",
    "export-qat-lr-nan", "export-run-missing", "export-run-model-garbage", "export-run-model-truncated",
    "export-run-model-unreadable", "export-run-data-missing-class", "export-out-read-only",
    "export-out-holds-another-model", "export-out-manifest-corrupt", "export-no-runs",
    "bench-modes-unknown", "bench-limit-zero", "bench-min-seconds-inf", "bench-no-source",
    "bench-manifest-not-json", "bench-manifest-path-escapes-bundle", "bench-manifest-unreadable",
    "bench-test-split-damaged", "bench-model-damaged", "bench-json-read-only", "bench-json-parent-is-a-file",
    "report-result-not-json", "report-result-rows-not-objects", "report-result-row-wrong-types",
    "report-out-read-only", "report-out-disk-full",
    "speed-rounds-zero", "speed-data-missing", "speed-json-read-only",
    "lowering-runs-missing", "lowering-calib-size-zero", "lowering-run-model-garbage", "lowering-out-read-only",
    "study-seeds-zero", "study-acts-unknown",
    "export-opset-not-int", "export-run-no-config", "export-run-config-corrupt", "export-out-manifest-wrong-schema",
    "bench-threads-negative", "bench-test-split-not-npz", "bench-reference-too-short", "bench-model-not-a-model",
    "bench-save-probs-read-only", "report-result-unreadable", "report-out-is-a-file", "speed-act-unknown",
    "speed-json-is-a-folder", "lowering-run-data-missing", "study-arch-seeds-malformed",
    "study-thresholds-out-of-range", "study-arch-tflite-calib-percentile-out-of-range", "train-data-env-missing",
    "profile-model-garbage-onnx", "profile-model-garbage-tflite", "profile-runs-zero", "profile-json-read-only",
    "report-max-drop-negative",
}
CASES = all_cases()
# Found by the matrix in study/ (written alongside it) and left to its author; strict, so a fix
# shows up as XPASS and this list must shrink.
KNOWN: dict[str, str] = {}  # none left: the study's five were fixed in study/config.py and study/run.py


def _param(case: Case):
    marks = [pytest.mark.slow] if case.tf or case.name not in CORE else []
    if case.name in KNOWN:
        marks.append(pytest.mark.xfail(reason=KNOWN[case.name], strict=True))
    return pytest.param(case, id=case.name, marks=marks)


@pytest.fixture(scope="session")
def fixtures(tmp_path_factory) -> Fixtures:
    fx = Fixtures(tmp_path_factory.mktemp("badinput-fixtures"))
    for name in ("data", "run", "bundle", "result.json"):  # the TensorFlow-free ones, up front
        fx.get(name)
    return fx


def test_core_names_exist():
    names = {c.name for c in CASES}
    assert {n for n in CORE - names if not n.startswith("study-")} == set()
    assert not any(c.tf for c in CASES if c.name in CORE), "CORE must stay TensorFlow-free"


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input_fails_cleanly(case, fixtures, tmp_path):
    built, digest = sorted(p.name for p in fixtures.root.iterdir()), fixtures.digest()
    rec = run_case(case, fixtures, tmp_path)
    if rec.get("skipped"):
        pytest.skip(rec["skipped"])
    assert rec["clean"], f"{case.name}: {rec['problems']}\nstderr: {rec.get('stderr_tail')}"
    if sorted(p.name for p in fixtures.root.iterdir()) == built:  # no fixture was built meanwhile
        assert fixtures.digest() == digest, "a case changed the shared fixtures"


# --- the judge can fail ------------------------------------------------------------------

def _case(**kw) -> Case:
    return Case("t", "train", [], r"--epochs", **kw)


@pytest.mark.parametrize("rc, stderr, before, after, problem", [
    (0, "error: --epochs must be > 0\n", {}, {}, "exit code 0"),
    (2, "Traceback (most recent call last):\nValueError: x\n", {}, {}, "traceback"),
    (2, "I0000 00:00:17.1 1 port.cc:1] noise\nerror: --epochs bad\n", {}, {}, "other stderr line"),
    (2, "error: --epochs bad\ndecoding imagefolder data from x (once; cached afterwards)\n", {}, {}, "not the last"),
    (2, "error: --epochs bad\nerror: again\n", {}, {}, "2 'error:' lines"),
    (2, "error: something unrelated\n", {}, {}, "does not match"),
    (2, "error: --epochs bad\n", {"m.json": "a"}, {"m.json": "b"}, "changed: m.json"),
    (2, "error: --epochs bad\n", {"m.json": "a"}, {}, "removed: m.json"),
    (2, "error: --epochs bad\n", {}, {".m.json.x1.tmp": "a"}, "left behind"),
    (-9, "error: --epochs bad\n", {}, {}, "signal 9"),
])
def test_judge_catches(rc, stderr, before, after, problem):
    problems, _, _ = judge(_case(), rc, stderr, before, after)
    assert any(problem in p for p in problems), problems


def test_judge_passes_a_clean_failure_with_progress_lines():
    stderr = "decoding imagefolder data from /d (once; cached afterwards)\nerror: --epochs must be > 0\n"
    problems, strict, err = judge(_case(allow_new=("run/*",)), 2, stderr, {"a": "1"}, {"a": "1", "run/x": "2"})
    assert problems == [] and not strict and err == "error: --epochs must be > 0"


def test_snapshot_sees_content_changes(tmp_path):
    (tmp_path / "f").write_bytes(b"1")
    before = snapshot(tmp_path)
    (tmp_path / "f").write_bytes(b"2")
    assert snapshot(tmp_path)["f"] != before["f"]


# --- the native-log filter ---------------------------------------------------------------

def test_keep_drops_native_noise_only():
    keep = lambda line, level=2: quietlog.keep(line.encode(), level)  # noqa: E731
    assert not keep(quietlog.BANNER.decode())
    assert not keep("I0000 00:00:1795850981.402427    2810 port.cc:153] oneDNN custom operations are on.")
    assert not keep("W0000 00:00:1795850981.4 2810 cpu_feature_guard.cc:227] slow")
    assert not keep("E0000 00:00:1795850984.964711    2810 cuda_platform.cc:52] failed call to cuInit: INTERNAL")
    assert not keep("2024-05-01 12:00:00.123456: I tensorflow/core/util/port.cc:113] oneDNN")
    assert keep("E0000 00:00:1795850984.9 2810 file_io.cc:9] could not write checkpoint")  # a real error
    assert keep("F0000 00:00:1795850984.9 2810 check.cc:9] Check failed: x")  # fatal: always
    assert keep("W0000 00:00:1795850984.9 2810 saving_utils.py:9] absl-py, from Python")  # not native
    assert keep("error: --epochs must be > 0") and keep("Epoch 1/3") and keep("/x.py:6: UserWarning: w")
    assert keep("I0000 00:00:1795850981.4 2810 port.cc:153] oneDNN", level=0)  # TF_CPP_MIN_LOG_LEVEL=0
    assert not keep("W0000 00:00:1795850981.4 2810 port.cc:153] warning", level=2)
    assert keep("W0000 00:00:1795850981.4 2810 port.cc:153] warning", level=1)


CHILD = r"""
import os, sys, time, warnings
from runtime.quietlog import native_logs_filtered
with native_logs_filtered():
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                b"I0000 00:00:1795851105.512614    4725 cpu_feature_guard.cc:227] This TensorFlow binary is optimized.\n"
                b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.\n")
    warnings.warn("a python warning")
    print("partial", end="", file=sys.stderr, flush=True)
    time.sleep(0.6)
    print(" line", file=sys.stderr, flush=True)
    print("to stdout", flush=True)
    os.write(2, b"E0000 00:00:1795851127.010023    4725 cuda_platform.cc:52] failed call to cuInit: UNKNOWN\n")
    os.write(2, b"F0000 00:00:1.2 1 check.cc:1] fatal: kept\n")
    if sys.argv[1] == "abort":
        os.abort()  # the forked filter outlives us and still delivers what was written
print("error: after the block", file=sys.stderr)
"""


@pytest.mark.parametrize("how", ["exit", "abort"])
def test_filter_end_to_end(how):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", quietlog.ENV)}
    env["PYTHONPATH"] = str(REPO)
    r = subprocess.run([sys.executable, "-c", CHILD, how], capture_output=True, text=True, env=env, timeout=60)
    lines = r.stderr.splitlines()
    assert r.stdout == "to stdout\n"
    assert not any("InitializeLog" in ln or "cpu_feature_guard" in ln or "To enable" in ln or "cuInit" in ln
                   for ln in lines), lines
    assert "partial line" in lines and "F0000 00:00:1.2 1 check.cc:1] fatal: kept" in lines
    assert any("UserWarning: a python warning" in ln for ln in lines)
    if how == "exit":
        assert r.returncode == 0 and lines[-1] == "error: after the block"
    else:
        assert r.returncode < 0 and lines[-1].startswith("F0000")


def test_filter_off_on_request():
    env = {**os.environ, "PYTHONPATH": str(REPO), quietlog.ENV: "1"}
    r = subprocess.run([sys.executable, "-c", CHILD, "exit"], capture_output=True, text=True, env=env, timeout=60)
    assert "cuInit" in r.stderr and "InitializeLog" in r.stderr
