"""The whole study in quick mode, end to end on tiny data: train, export, bench, report, and a
rerun that finds everything done. Slow (minutes): CI runs it with -m slow."""
import json
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow


def test_quick_study_end_to_end_and_resume(tmp_path, tiny_folder):
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "study", "--quick", "--data", str(tiny_folder), "--out", str(out),
           "--seeds", "2", "--recipes", "seed,strong"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    first = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr[-3000:]
    results = json.loads((out / "study.json").read_text())
    assert results["schema"] == "edge-study/1" and len(results["cells"]) == 8
    for c in results["cells"]:
        assert {a["model"] for a in c["artifacts"]} == {"tflite/float32", "tflite/int8", "onnx/float32", "onnx/int8"}
        assert all(a["latency_ms_p50"] is not None for a in c["artifacts"])  # benched
        assert c["train"]["epochs"] == 1 and len(c["history"]) == 1
    s = results["summary"]
    assert {(p["recipe"], p["model"]) for p in s["paired"]} >= {("seed", "keras"), ("strong", "tflite/int8")}
    assert s["bn_folding"] and all(b["ok"] and b["same_ops_as_bn_free_twin"] for b in s["bn_folding"])
    for name in ("report.md", "curves.png", "precision.png", "latency.png", "config.json"):
        assert (out / name).is_file()

    # Rerun: every stage is found complete, nothing is retrained or re-exported.
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stderr.count("train: done") == 8 and p.stderr.count("bench: done") == 8
    assert "$ python" not in p.stderr
    again = json.loads((out / "study.json").read_text())
    assert again["cells"] == results["cells"]
    assert time.perf_counter() - t0 < first / 3
