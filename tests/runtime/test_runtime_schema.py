"""The edge-bench/1 document: keys, types and meaning of a bench of the tiny bundle."""
from __future__ import annotations

from runtime.schema import BENCH_SCHEMA, ROW_FIELDS, check_row

# Pinned on purpose: changing this list is changing the schema (docs/runtime.md, report.py)
ROW_KEYS = [
    "device", "file", "format", "mode", "act", "arch", "size_kb", "sha256_ok", "threads",
    "isolated", "input_dtype", "input_layout", "input_shape", "count", "accuracy",
    "parity_accuracy", "agreement_ref", "mean_abs_diff_ref", "max_abs_diff_ref", "load_ms",
    "latency_runs", "latency_ms_mean", "latency_ms_std", "latency_ms_min", "latency_ms_p50",
    "latency_ms_p90", "latency_ms_p99", "latency_ms_max", "bare_ms_p50", "overhead_pct",
    "throughput_batch", "throughput_ips", "peak_rss_mb", "model_rss_mb", "int8_arith", "error",
]


def test_row_keys_are_pinned():
    assert list(ROW_FIELDS) == ROW_KEYS


def test_document_shape(bench_json):
    d = bench_json
    assert d["schema"] == BENCH_SCHEMA
    assert {"created", "provenance", "settings", "data", "agreement", "rows"} <= set(d)
    prov = d["provenance"]
    assert {"device", "versions", "git_commit", "source_run"} <= set(prov)
    assert prov["source_run"]["act"] == "relu" and "numpy" in prov["versions"]
    assert d["settings"]["label"] == "x86-test" and d["settings"]["threads"] == 1
    files = [r["file"] for r in d["rows"]]
    assert files == ["float32.tflite", "int8.tflite", "float32.onnx"]
    assert d["agreement"]["files"] == files
    m = d["agreement"]["top1"]
    assert all(m[i][i] == 1.0 for i in range(3)) and m[0][2] == 1.0


def test_rows_types_and_values(bench_json):
    for r in bench_json["rows"]:
        assert list(r) == ROW_KEYS and check_row(r) == [], check_row(r)
        assert r["error"] is None and r["sha256_ok"] is True and r["isolated"] is True
        assert r["device"] == "x86-test" and r["act"] == "relu" and r["count"] == 300
        assert 0 < r["latency_ms_min"] <= r["latency_ms_p50"] <= r["latency_ms_p90"] \
            <= r["latency_ms_p99"] <= r["latency_ms_max"]
        assert r["latency_runs"] == 20 and r["throughput_ips"] > 0 and r["throughput_batch"] == 32
        assert r["peak_rss_mb"] > r["model_rss_mb"] >= 0 and r["load_ms"] > 0
        assert isinstance(r["overhead_pct"], float) and r["bare_ms_p50"] > 0
        assert r["input_shape"][1:] == [32, 32, 3] and r["input_layout"] == "NHWC"
        # default --int8-kernels auto: never the saturating kernels; LiteRT makes no claim
        assert r["int8_arith"] == ("exact" if r["format"] == "onnx" else None)
    f32 = [r for r in bench_json["rows"] if r["mode"] == "float32"]
    assert all(r["agreement_ref"] == 1.0 and r["max_abs_diff_ref"] <= 1e-5 for r in f32)
    assert len({r["accuracy"] for r in f32}) == 1


def test_check_row_catches_problems():
    row = dict.fromkeys(ROW_KEYS)
    assert check_row(row) == []
    row.update(latency_ms_p50="fast", threads=True, extra=1)
    problems = check_row(row)
    assert any(p.startswith("latency_ms_p50") for p in problems)
    assert any(p.startswith("threads") for p in problems) and "unexpected extra" in problems


def test_docs_describe_every_row_key():
    from tests.runtime.rt_helpers import REPO
    doc = (REPO / "docs" / "runtime.md").read_text()
    assert [k for k in ROW_KEYS if f"`{k}`" not in doc] == []
