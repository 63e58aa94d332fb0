"""The measuring internals, in-process: timing loops, statistics, isolation."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests.runtime.rt_helpers import blocking_env, run_cli
from runtime.backends import get_backend
from runtime.errors import BenchError
from runtime.isolate import _describe
from runtime.measure import BenchConfig, compare, latency_stats, time_latency


def test_latency_loop_counts_and_interleaves(tiny_bundle):
    b = get_backend("tflite").load(tiny_bundle / "float32.tflite")
    singles = b.prepare(np.zeros((3, 32, 32, 3), np.uint8))[:, None]
    bench, bare = time_latency(b, singles, BenchConfig(bundle="x", runs=23, warmup=2))
    assert len(bench) == len(bare) == 23 and min(bench) > 0
    s = latency_stats(bench)
    assert s["latency_runs"] == 23 and s["latency_ms_min"] <= s["latency_ms_p50"] <= s["latency_ms_max"]


def test_compare():
    p = np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)
    q = np.array([[0.6, 0.4], [0.7, 0.3]], np.float32)
    agree, mean_d, max_d = compare(p, q)
    assert agree == 0.5 and max_d == pytest.approx(0.5) and mean_d == pytest.approx(0.4)


@pytest.mark.parametrize("kw", [dict(), dict(bundle="b", models=["m"]), dict(bundle="b", runs=0),
                                dict(bundle="b", min_seconds=0.0), dict(bundle="b", limit=0)])
def test_config_check(kw):
    with pytest.raises(BenchError):
        BenchConfig(**kw).check()


def test_describe_child_failures():
    assert _describe(-6, "INFO: x\nF tflite/kernel.cc] Check failed\n") == \
        "runtime crashed (SIGABRT) on this model: F tflite/kernel.cc] Check failed"
    assert _describe(3, "").startswith("measuring process failed (exit 3)")


CRASH = """
import importlib.abc, os, sys
class _Crash(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "runtime.backends.litert":
            os.abort()  # what a native runtime does on a model it cannot handle
sys.meta_path.insert(0, _Crash())
"""


def test_a_crashing_runtime_costs_one_row(tiny_bundle, tmp_path):
    env = blocking_env(tmp_path, set())
    site = env["PYTHONPATH"].split(os.pathsep)[0]
    with open(f"{site}/sitecustomize.py", "w") as f:
        f.write(CRASH)
    out = tmp_path / "r.json"
    r = run_cli("runtime.bench", "--bundle", tiny_bundle, "--runs", "3", "--warmup", "0",
                "--limit", "20", "--json", out, "--no-progress", env=env)
    assert r.returncode == 1 and "Traceback" not in r.stdout
    rows = {x["file"]: x for x in json.loads(out.read_text())["rows"]}
    assert rows["float32.onnx"]["error"] is None
    assert rows["int8.tflite"]["error"].startswith("runtime crashed (SIGABRT)")
