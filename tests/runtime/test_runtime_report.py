"""`python -m runtime.report`: several devices' results -> report.md + PNGs."""
from __future__ import annotations

import copy
import json

from tests.runtime.rt_helpers import blocking_env, run_cli


def _write(tmp_path, doc, name, label, act=None, slower=1.0):
    d = copy.deepcopy(doc)
    d["settings"]["label"] = label
    for r in d["rows"]:
        r["act"] = act or r["act"]
        r["latency_ms_p50"] *= slower
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(d))
    return p


def test_report_merges_devices(bench_json, tmp_path):
    files = [_write(tmp_path, bench_json, "pi5", "pi5-test"),
             _write(tmp_path, bench_json, "pi5-tanhexp", "pi5-test", act="tanhexp", slower=1.5),
             _write(tmp_path, bench_json, "x86", "x86-test")]
    out = tmp_path / "report"
    r = run_cli("runtime.report", *files, "--out", out)
    assert r.returncode == 0, r.stderr
    md = (out / "report.md").read_text()
    assert "pi5-test" in md and "x86-test" in md
    for png in ("latency_vs_accuracy.png", "tanhexp_vs_relu.png", "deltas_vs_float.png"):
        assert (out / png).stat().st_size > 1000 and f"]({png})" in md
    pair_rows = [ln for ln in md.splitlines() if ln.startswith("| pi5-test | tiny |")]
    assert len(pair_rows) == 3 and all("| 1.50 |" in ln for ln in pair_rows)  # latency ratio
    assert "x86-test | tiny | tflite" not in md.split("## TanhExp vs ReLU")[1].split("##")[0]


def test_report_bad_input_is_one_line(bench_json, tmp_path):
    r = run_cli("runtime.report", tmp_path / "nope.json", "--out", tmp_path / "o")
    assert r.returncode == 2 and r.stderr.startswith("error: result file not found")
    (tmp_path / "other.json").write_text('{"schema": "edge-bundle/1"}')
    r = run_cli("runtime.report", tmp_path / "other.json", "--out", tmp_path / "o")
    assert r.returncode == 2 and "not an edge-bench/1 result" in r.stderr
    assert "Traceback" not in r.stderr


def test_report_without_matplotlib(bench_json, tmp_path):
    f = _write(tmp_path, bench_json, "x86", "x86-test")
    env = blocking_env(tmp_path, {"matplotlib"})
    r = run_cli("runtime.report", f, "--out", tmp_path / "o", env=env)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "pip install matplotlib" in r.stderr
    r = run_cli("runtime.report", f, "--out", tmp_path / "o", "--no-plots", env=env)
    assert r.returncode == 0 and "x86-test" in (tmp_path / "o" / "report.md").read_text()


def test_report_one_label_is_one_machine(bench_json, tmp_path):
    """Two machines under one label would set their timings against each other in the ratios:
    refused, naming what differs; the device table shows each machine's vector extensions."""
    avx512 = copy.deepcopy(bench_json)
    avx512["provenance"]["device"]["isa"] = "avx avx2 fma avx512f avx512_vnni"
    avx2 = copy.deepcopy(bench_json)
    avx2["provenance"]["device"]["isa"] = "avx avx2 fma"
    a = _write(tmp_path, avx512, "a", "x86-test")
    b = _write(tmp_path, avx2, "b", "x86-test", act="tanhexp")
    r = run_cli("runtime.report", a, b, "--out", tmp_path / "o", "--no-plots")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "label 'x86-test' names two machines (isa 'avx avx2 fma avx512f avx512_vnni' vs 'avx avx2 fma')" in r.stderr
    assert not (tmp_path / "o").exists()
    b = _write(tmp_path, avx2, "b", "x86-avx2", act="tanhexp")
    r = run_cli("runtime.report", a, b, "--out", tmp_path / "o", "--no-plots")
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "o" / "report.md").read_text()
    devices = md.split("## Devices")[1].split("##")[0]
    assert "| isa |" in devices and "| avx avx2 fma |" in devices and "avx512_vnni |" in devices


def _row(dev, fmt, mode, acc, p50, count=10000, emulated=False, error=None, act="relu"):
    return {"device": dev, "act": act, "arch": "tiny", "format": fmt, "mode": mode, "accuracy": acc,
            "latency_ms_p50": p50, "agreement_ref": 0.99, "count": count, "_emulated": emulated,
            "error": error}


def test_ship_picks_the_fastest_model_within_the_drop():
    from runtime.report import ship
    rows = [_row("arm", "tflite", "float32", 0.700, 0.100), _row("arm", "onnx", "float32", 0.701, 0.080),
            _row("arm", "tflite", "int8", 0.698, 0.040),       # 0.3 pt below the best float32: ok
            _row("arm", "tflite", "dynamic", 0.690, 0.020),    # 1.1 pt below: too far at 0.5
            _row("arm", "onnx", "int8", 0.700, 0.010, error="crashed"),  # failed rows never win
            _row("avx2", "tflite", "float32", 0.700, 0.100), _row("avx2", "tflite", "int8", 0.699, 0.150)]
    got = {d["device"]: d for d in ship(rows)}
    arm = got["arm"]
    assert arm["pick"] == "int8.tflite" and arm["latency_ms_p50"] == 0.040
    assert abs(arm["speedup"] - 0.080 / 0.040) < 1e-9            # against the fastest float32
    assert abs(arm["acc_delta_pp"] - (0.698 - 0.701) * 100) < 1e-9  # against the best float32
    assert arm["why"] == ""
    assert {d["device"]: d["pick"] for d in ship(rows, max_drop_pt=1.2)}["arm"] == "dynamic.tflite"
    avx2 = got["avx2"]  # int8 slower than float32: float32 ships, and the note says why int8 did not
    assert avx2["pick"] == "float32.tflite" and avx2["speedup"] == 1.0
    assert avx2["why"] == "int8 slower than float32 here: int8.tflite 1.50x float32.tflite"


def test_ship_declines_where_the_numbers_cannot_decide():
    from runtime.report import ship
    rows = [_row("pi", "tflite", "float32", 0.7, 30.0, count=100, emulated=True),
            _row("pi", "tflite", "int8", 0.7, 3.0, count=100, emulated=True),
            _row("few", "tflite", "float32", 0.7, 0.1, count=100), _row("few", "tflite", "int8", 0.7, 0.05, count=100),
            _row("nofloat", "tflite", "int8", 0.7, 0.05)]
    got = {d["device"]: d for d in ship(rows)}
    assert all(d["pick"] is None and d["speedup"] is None for d in got.values())
    assert got["pi"]["why"] == "emulated CPU: its timings mean nothing"
    assert got["few"]["why"] == "100 test images: too few to tell a 0.5-pt loss"
    assert got["nofloat"]["why"] == "no float32 build measured to compare with"


def test_report_what_to_ship_section_and_max_drop(bench_json, tmp_path):
    f = _write(tmp_path, bench_json, "x86", "x86-test")
    r = run_cli("runtime.report", f, "--out", tmp_path / "o", "--no-plots", "--max-drop", "-1")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--max-drop must be in [0, 100)" in r.stderr
    assert not (tmp_path / "o").exists()
    r = run_cli("runtime.report", f, "--out", tmp_path / "o", "--no-plots", "--max-drop", "2")
    assert r.returncode == 0, r.stderr
    section = (tmp_path / "o" / "report.md").read_text().split("## What to ship")[1].split("\n## ")[0]
    assert "within 2 points" in section and "| x86-test |" in section


def test_emulated_devices_stay_off_the_latency_plots(bench_json, tmp_path):
    from runtime import plots
    from runtime.report import act_pairs, load_results, merge
    emu = copy.deepcopy(bench_json)
    emu["provenance"]["device"]["cpu"] = "Cortex-A76 (emulated by qemu)"
    files = [_write(tmp_path, bench_json, "x86", "x86-test"), _write(tmp_path, emu, "pi5", "pi5-emu"),
             _write(tmp_path, emu, "pi5-t", "pi5-emu", act="tanhexp")]
    rows = merge(load_results(files))
    kept, left_out = plots.measured(rows)
    assert left_out == ["pi5-emu"] and kept and {r["device"] for r in kept} == {"x86-test"}
    pairs = act_pairs(rows)
    assert pairs and plots.measured(pairs) == ([], ["pi5-emu"])  # only the emulated device has both acts
    assert plots.act_ratios(pairs, tmp_path) is None  # nothing measured to plot
    assert plots.latency_vs_accuracy(rows, tmp_path) == "latency_vs_accuracy.png"
