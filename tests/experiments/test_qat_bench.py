"""experiments.qat_bench: PTQ against QAT on each target, scored on the validation split only."""
from __future__ import annotations

import subprocess
import sys


def test_rows_per_target_on_validation(tanhexp_run):
    from export.qat import QAT_TARGETS
    from experiments.qat_bench import bench
    out = bench([str(tanhexp_run)], epochs=1, lr=1e-4, calib_size=50)
    assert out["split"] == "validation"
    assert [r["model"] for r in out["rows"]] == ["ptq int8", *(f"qat on {t}" for t in QAT_TARGETS)]
    for r in out["rows"]:
        # accuracy can move only on the images where the predictions disagree
        assert 0.0 <= r["agreement_val"] <= 1.0
        assert abs(r["accuracy_change_val_pt"]) <= 100 * (1 - r["agreement_val"]) + 1e-9
    assert out["rows"][0]["fine_tune_seconds"] is None and out["rows"][1]["fine_tune_seconds"] > 0
    assert {"device", "versions", "git_commit"} <= set(out)  # provenance


def test_bad_input_is_one_line(tmp_path):
    for argv in (["--run", str(tmp_path / "nope")], ["--run", str(tmp_path), "--epochs", "0"]):
        p = subprocess.run([sys.executable, "-m", "experiments.qat_bench", *argv], capture_output=True, text=True, timeout=120)
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert p.stderr.startswith("error:")
