"""`python -m runtime.bench` on good and bad input: error rows, one-line errors, exit codes."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.runtime.rt_helpers import edit_manifest, run_cli

FAST = ("--runs", "3", "--warmup", "0", "--limit", "30", "--no-progress")


def bench(*args, **kw):
    return run_cli("runtime.bench", *args, *FAST, **kw)


def cli_error(r, *words):
    """Exit 2 with exactly one `error: ...` line on stderr and no traceback."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert all(w in lines[0] for w in words), lines[0]


def rows_of(path):
    return {r["file"]: r for r in json.loads(path.read_text())["rows"]}


def test_damaged_model_is_an_error_row_not_benchmarked(bundle_copy, tmp_path):
    p = bundle_copy / "int8.tflite"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    out = tmp_path / "r.json"
    r = bench("--bundle", bundle_copy, "--json", out)
    assert r.returncode == 1 and "Traceback" not in r.stderr + r.stdout
    rows = rows_of(out)
    bad = rows["int8.tflite"]
    assert bad["sha256_ok"] is False and "int8.tflite" in bad["error"] and "sha256" in bad["error"]
    assert bad["latency_ms_p50"] is None and bad["accuracy"] is None and bad["load_ms"] is None
    assert rows["float32.tflite"]["error"] is None and rows["float32.tflite"]["sha256_ok"] is True
    assert "FAILED int8.tflite" in r.stdout


@pytest.mark.parametrize("name", ["../float32.tflite", "sub/float32.tflite", "/etc/passwd"])
def test_manifest_paths_must_be_bare_names(bundle_copy, tmp_path, name):
    edit_manifest(bundle_copy, lambda m: m["artifacts"][0].update(file=name))
    out = tmp_path / "r.json"
    r = bench("--bundle", bundle_copy, "--json", out, "--in-process")
    assert r.returncode == 1
    row = rows_of(out)[name]
    assert "bare name" in row["error"] and row["load_ms"] is None


def test_missing_model_file_is_an_error_row(bundle_copy, tmp_path):
    (bundle_copy / "float32.onnx").unlink()
    out = tmp_path / "r.json"
    assert bench("--bundle", bundle_copy, "--json", out, "--in-process").returncode == 1
    assert "missing" in rows_of(out)["float32.onnx"]["error"]


def test_run_level_problems_exit_2(tiny_bundle, bundle_copy, tmp_path):
    cli_error(bench("--bundle", tmp_path / "nowhere"), "bundle not found")
    cli_error(bench("--bundle", tmp_path), "no manifest.json")
    (bundle_copy / "manifest.json").write_text('{"schema": "edge-bundle/1", "artifacts": [')
    cli_error(bench("--bundle", bundle_copy), "not valid JSON")
    (bundle_copy / "manifest.json").write_text('{"schema": "something/9"}')
    cli_error(bench("--bundle", bundle_copy), "schema")
    cli_error(run_cli("runtime.bench"), "--bundle")
    cli_error(bench("--bundle", tiny_bundle, "--threads", "0"), "--threads")
    cli_error(bench("--bundle", tiny_bundle, "--runs", "x"), "--runs")
    cli_error(bench("--bundle", tiny_bundle, "--formats", "pt"), "--formats", "unknown 'pt'")
    cli_error(bench("--bundle", tiny_bundle, "--modes", "qat"), "nothing to benchmark")
    cli_error(bench("--bundle", tiny_bundle, "--data", "x.npz"), "--data")


def test_damaged_or_malformed_test_split_exits_2(bundle_copy, tmp_path):
    np.savez(bundle_copy / "test.npz", x=np.zeros((4, 32, 32, 3), np.uint8), y=np.zeros(4, np.int64))
    cli_error(bench("--bundle", bundle_copy), "test.npz", "sha256")
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((4, 32, 32), np.float32))
    cli_error(bench("--model", bundle_copy / "int8.tflite", "--data", bad), "uint8")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    cli_error(bench("--model", bundle_copy / "int8.tflite", "--data", tmp_path / "junk.npz"), "npz")


def test_corrupt_and_wrong_shape_models_become_rows(tiny_bundle, tmp_path):
    good = (tiny_bundle / "float32.tflite").read_bytes()
    (tmp_path / "trunc.tflite").write_bytes(good[:700])
    (tmp_path / "rand.onnx").write_bytes(np.random.default_rng(1).bytes(3000))
    (tmp_path / "rand.tflite").write_bytes(np.random.default_rng(2).bytes(3000))
    models = [tmp_path / "trunc.tflite", tmp_path / "rand.onnx", tmp_path / "rand.tflite",
              tiny_bundle.parent / "extras" / "wrong_shape.tflite", tiny_bundle / "int8.tflite"]
    out = tmp_path / "r.json"
    r = bench(*(a for m in models for a in ("--model", m)), "--data", tiny_bundle / "test.npz",
              "--json", out)
    assert r.returncode == 1 and "Traceback" not in r.stderr + r.stdout
    rows = list(rows_of(out).values())
    errors = [x["error"] for x in rows]
    assert all(e and "\n" not in e for e in errors[:4]) and errors[4] is None
    assert "does not fit images" in errors[3] and "TFL3" in errors[2]
    assert rows[4]["accuracy"] is not None and rows[4]["mode"] == "int8"


def test_bare_model_without_data_is_latency_only(tiny_bundle, tmp_path):
    out = tmp_path / "r.json"
    r = bench("--model", tiny_bundle / "float32.onnx", "--model", tiny_bundle / "float32.tflite",
              "--in-process", "--json", out)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["data"]["source"] == "synthetic" and doc["settings"]["isolated"] is False
    for row in doc["rows"]:
        assert row["accuracy"] is None and row["agreement_ref"] is None
        assert row["latency_ms_p50"] > 0 and row["sha256_ok"] is None and row["count"] == 30
    assert doc["agreement"]["top1"][0][1] == 1.0  # the two float builds agree on the same inputs


def test_filters_min_seconds_and_saved_probs(tiny_bundle, tmp_path):
    out, probs = tmp_path / "r.json", tmp_path / "p.npz"
    r = run_cli("runtime.bench", "--bundle", tiny_bundle, "--modes", "int8", "--min-seconds",
                "0.05", "--limit", "40", "--json", out, "--save-probs", probs, "--no-progress",
                "--in-process")
    assert r.returncode == 0, r.stderr
    (row,) = rows_of(out).values()
    assert row["mode"] == "int8" and row["latency_runs"] >= 20
    with np.load(probs, allow_pickle=False) as z:
        assert z.files == ["int8.tflite"] and z["int8.tflite"].shape == (40, 10)


def test_full_split_accuracy_is_checked_against_parity(bundle_copy):
    def parity(m):
        for a in m["artifacts"]:
            a["parity"] = {"count": 300, "test_accuracy": 0.5 if a["mode"] == "int8" else 1.0}
    edit_manifest(bundle_copy, parity)
    r = run_cli("runtime.bench", "--bundle", bundle_copy, "--runs", "3", "--warmup", "0",
                "--in-process", "--no-progress")
    assert r.returncode == 0, r.stderr
    notes = [ln for ln in r.stdout.splitlines() if ln.startswith("NOTE")]
    assert len(notes) == 1 and notes[0].startswith("NOTE int8.tflite: accuracy 1.0000 differs")


def test_modes_and_formats_take_spaces_commas_and_repeats():
    from runtime.bench import build_parser
    a = build_parser().parse_args(["--bundle", "b", "--modes", "float32", "int8,qat", "--modes", "float16",
                                   "--formats", "onnx,tflite"])
    assert a.modes == ["float32", "int8", "qat", "float16"] and a.formats == ["onnx", "tflite"]
    assert build_parser().parse_args(["--bundle", "b"]).modes is None


def test_modes_with_spaces_select_models(tiny_bundle, tmp_path):
    r = bench("--bundle", tiny_bundle, "--modes", "float32", "int8", "--formats", "tflite",
              "--json", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    assert sorted(rows_of(tmp_path / "r.json")) == ["float32.tflite", "int8.tflite"]
    cli_error(bench("--bundle", tiny_bundle, "--modes", "float32", "int4"), "--modes", "unknown 'int4'")
