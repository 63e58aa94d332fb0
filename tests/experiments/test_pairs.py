"""python -m experiments.pairs on hand-made run folders: pairing by seed, the paired statistics against
hand-computed values, what differs within a pair, and its refusals."""
import json

import pytest

from experiments.pairs import compare, main, markdown
from experiments.sweep import NotAValidationRun
from tests.experiments.test_sweep import _metrics_unreadable, _run  # noqa: F401 (the fixture guards metrics.json)

# last-5 means: baseline 0.800, 0.810, 0.790; variant +0.2, +0.4, +0.6 pt
BASE = {0: 0.800, 1: 0.810, 2: 0.790}
DIFF = {0: 0.002, 1: 0.004, 2: 0.006}


def _flat(v, n=6):
    return [v] * n


def _arms(root, seeds=(0, 1, 2), **var_cfg):
    base = [_run(root, f"base-s{s}", _flat(BASE[s]), _flat(10), seed=s) for s in seeds]
    var = [_run(root, f"lr2-s{s}", _flat(BASE[s] + DIFF[s]), _flat(10), seed=s, lr=0.2, **var_cfg) for s in seeds]
    return base, var


def test_paired_statistics_against_hand_computed_values(tmp_path):
    base, var = _arms(tmp_path)
    res = compare(base, list(reversed(var)))  # pairing is by seed, not by order
    assert [(p["seed"], p["baseline"], p["variant"]) for p in res["pairs"]] == [
        (s, f"base-s{s}", f"lr2-s{s}") for s in (0, 1, 2)]
    assert [p["diff_pt"] for p in res["pairs"]] == pytest.approx([0.2, 0.4, 0.6])
    assert all(p["changes"] == {"lr": [0.1, 0.2]} for p in res["pairs"])  # strong-sgd's own lr, resolved
    s = res["stats"]
    # differences 0.2, 0.4, 0.6: mean 0.4, sd 0.2, se 0.2/sqrt(3); t(0.975, 2) = 4.3027
    half = 4.3027 * 0.2 / 3 ** 0.5
    assert s["n"] == 3 and s["mean_diff"] == pytest.approx(0.4) and s["std_diff"] == pytest.approx(0.2)
    assert (s["ci_low"], s["ci_high"]) == (pytest.approx(0.4 - half, abs=1e-3), pytest.approx(0.4 + half, abs=1e-3))
    # t = 0.4 / 0.11547 = 3.464 at 2 df: two-sided p = 0.0742
    assert s["p_value"] == pytest.approx(0.0742, abs=1e-3)
    assert s["significant"] is False and s["verdict"] == "not significant"
    assert s["baseline_mean"] == pytest.approx(80.0) and s["baseline_std"] == pytest.approx(1.0)
    assert s["variant_mean"] == pytest.approx(80.4)
    md = markdown(res)
    assert "| 1 | base-s1 | lr2-s1 | lr " in md and "| 81.00 % | 81.40 % | +0.40 pt | yes |" in md
    # variant 80.2, 81.4, 79.6: sd sqrt(1.68 / 2) = 0.92
    assert "baseline 80.00 ± 1.00 %, variant 80.40 ± 0.92 % (mean ± std)" in md
    assert "difference +0.40 pt (95 % interval [-0.10, +0.90] pt, p = 0.074): not significant." in md


def test_what_else_differs_within_a_pair_is_shown(tmp_path):
    base, var = _arms(tmp_path, seeds=(0,))
    ls = _run(tmp_path, "ls-s1", _flat(0.8), _flat(10), seed=1, label_smoothing=0.1)
    other = _run(tmp_path, "lr2-s1", _flat(0.81), _flat(10), seed=1, lr=0.2,
                 device={"cpu": "Other CPU", "arch": "x86_64", "cores": 2})
    res = compare(base + [ls], var + [other])
    p1 = res["pairs"][1]
    assert p1["changes"]["label_smoothing"] == [0.1, 0.0] and p1["changes"]["lr"][1] == 0.2
    assert p1["same_machine"] is False and res["pairs"][0]["same_machine"] is True
    assert "label-smoothing 0.1 → 0.0" in markdown(res) and "| no |" in markdown(res)


def test_running_and_unpaired_runs_stay_out_of_the_statistics(tmp_path):
    base, var = _arms(tmp_path, seeds=(0, 1))
    running = _run(tmp_path, "lr2-s2", [0.4, 0.5], [10, 10], seed=2, lr=0.2, epochs=140)
    base2 = _run(tmp_path, "base-s2", _flat(0.79), _flat(10), seed=2)
    lone = _run(tmp_path, "base-s3", _flat(0.79), _flat(10), seed=3)
    res = compare(base + [base2, lone], var + [running])
    assert [p["finished"] for p in res["pairs"]] == [True, True, False]
    assert res["pairs"][2]["diff_pt"] is None
    assert res["stats"]["n"] == 2 and res["stats"]["mean_diff"] == pytest.approx(0.3)
    assert res["unpaired"] == {"baseline": [3], "variant": []}
    md = markdown(res)
    assert "– (running)" in md and "Unpaired (no run of the other arm): baseline seed(s) 3." in md


def test_one_pair_gives_no_interval(tmp_path):
    base, var = _arms(tmp_path, seeds=(0,))
    s = compare(base, var)["stats"]
    assert s["n"] == 1 and s["ci_low"] is None and s["verdict"] == "one seed: no test possible"
    assert "baseline 80.00 %, variant 80.20 %; difference +0.20 pt (no interval from one pair)" in markdown(
        compare(base, var))


def test_refusals(tmp_path, capsys):
    base, var = _arms(tmp_path, seeds=(0, 1))
    twice = _run(tmp_path, "base-s0-again", _flat(0.8), _flat(10), seed=0)
    with pytest.raises(NotAValidationRun, match="two runs of seed 0"):
        compare(base + [twice], var)
    other_split = _run(tmp_path, "lr2-val1k-s0", _flat(0.8), _flat(10), seed=0, lr=0.2, val_size=1000)
    with pytest.raises(NotAValidationRun, match="different splits"):
        compare(base, [other_split])
    # the CLI: one-line errors, exit 2, nothing written
    out = tmp_path / "pairs.json"
    assert main(["--baseline", str(base[0]), "--variant", str(var[1]), "--json", str(out)]) == 2
    assert "no seed has a run in both arms" in capsys.readouterr().err and not out.exists()
    assert main(["--baseline", str(base[0]), "--variant", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["--baseline", str(base[0]), "--variant", str(var[0]), "--level", "1.5"])


def test_cli_writes_table_json_and_plot(tmp_path, capsys):
    base, var = _arms(tmp_path)
    js, png = tmp_path / "out" / "pairs.json", tmp_path / "out" / "pairs.png"
    assert main(["--baseline", *map(str, base), "--variant", *map(str, var), "--json", str(js),
                 "--plot", str(png)]) == 0
    assert "+0.40 pt" in capsys.readouterr().out
    data = json.loads(js.read_text())
    assert data["stats"]["n"] == 3 and "git_commit" in json.dumps(data["provenance"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
