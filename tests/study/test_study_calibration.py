"""The study's int8 calibration settings, global and per architecture: what it asks the exporter
for, what it re-exports when a bundle was calibrated otherwise, and its bad input (fast)."""
import hashlib
import json

import pytest

from study.__main__ import parse
from study.config import RANGES, StudyConfig
from study.run import Cell, export_cmd, missing_modes

SEED, RESNET8 = Cell("seed", "seed", "relu", 0), Cell("resnet8", "strong-sgd", "relu", 0)
# The settings chosen on validation (docs/decisions.md), which are StudyConfig's defaults
CHOSEN = dict(archs=["seed", "resnet8"], onnx_calib_percentile=99.99, arch_calib_size={"resnet8": 2000},
              arch_tflite_calib_percentile={"resnet8": 99.99})
# Min/max ranges and one calibration size everywhere: what a study is with the choices taken out
PLAIN = dict(onnx_calib_percentile=None, arch_calib_size={}, arch_tflite_calib_percentile={})


def plain(**kw):
    return StudyConfig(**{**PLAIN, **kw})


def test_the_defaults_are_the_chosen_settings():
    d = StudyConfig()
    assert {k: getattr(d, k) for k in CHOSEN if k != "archs"} == {k: v for k, v in CHOSEN.items() if k != "archs"}
    assert (d.arch_seeds, d.arch_recipes) == ({"resnet8": 1}, {"resnet8": ["strong-sgd"]})


def _flag(cmd, name):
    return cmd[cmd.index(name) + 1] if name in cmd else None


def _bundle(tmp_path, entries):
    """A run folder whose export manifest lists (format, mode, calibration or None)."""
    exp = tmp_path / "run" / "export"
    exp.mkdir(parents=True)
    arts = []
    for fmt, mode, cal in entries:
        f = exp / f"{mode}.{fmt}"
        f.write_bytes(f"{fmt}{mode}".encode())
        a = {"file": f.name, "format": fmt, "mode": mode, "sha256": hashlib.sha256(f.read_bytes()).hexdigest()}
        arts.append({**a, "calibration": cal} if cal is not None else a)
    (exp / "manifest.json").write_text(json.dumps({"artifacts": arts}))
    return tmp_path / "run"


def _missing(cfg, run, cell, fmt, modes):
    return missing_modes(run, fmt, modes, {m: cfg.calibration_for(cell.arch, fmt, m) for m in modes})


def test_export_cmd_follows_the_cells_arch(tmp_path):
    cfg = StudyConfig(**CHOSEN)
    cfg.validate()
    r8 = export_cmd(cfg, RESNET8, tmp_path, "tflite", ["int8", "qat"])
    assert _flag(r8, "--calib-size") == "2000" and _flag(r8, "--tflite-calib-percentile") == "99.99"
    assert "--onnx-calib-percentile" not in r8
    seed = export_cmd(cfg, SEED, tmp_path, "tflite", ["int8"])
    assert _flag(seed, "--calib-size") == "500" and "--tflite-calib-percentile" not in seed
    for cell, size in ((SEED, "500"), (RESNET8, "2000")):  # ONNX: the global percentile, the arch's count
        cmd = export_cmd(cfg, cell, tmp_path, "onnx", ["int8"])
        assert _flag(cmd, "--calib-size") == size and _flag(cmd, "--onnx-calib-percentile") == "99.99"
        assert "--tflite-calib-percentile" not in cmd
    assert "--onnx-calib-percentile" not in export_cmd(plain(), SEED, tmp_path, "onnx", ["int8"])
    # the percentile as asked, not rounded to 6 digits by a :g (which would read 100 here)
    fine = plain(tflite_calib_percentile=99.999999)
    assert _flag(export_cmd(fine, SEED, tmp_path, "tflite", ["int8"]), "--tflite-calib-percentile") == "99.999999"


def test_per_arch_override_beats_the_global_setting():
    cfg = plain(calib_size=800, tflite_calib_percentile=99.9, arch_tflite_calib_percentile={"resnet8": 99.99},
                      arch_onnx_calib_percentile={"seed": 99.999})
    assert cfg.calib_size_for("seed") == cfg.calib_size_for("resnet8") == 800
    assert cfg.ranges_for("seed", "tflite") == "percentile 99.9"
    assert cfg.ranges_for("resnet8", "tflite") == "percentile 99.99"
    assert cfg.ranges_for("seed", "onnx") == "percentile 99.999" and cfg.ranges_for("resnet8", "onnx") == "min/max"


def test_calibration_asked_per_mode():
    cfg = StudyConfig(**CHOSEN)
    assert cfg.calibration_for("resnet8", "tflite", "int8") == {"count": 2000, "ranges": "percentile 99.99"}
    assert cfg.calibration_for("resnet8", "tflite", "qat") == {"count": 2000}  # QAT learns its ranges
    assert cfg.calibration_for("seed", "onnx", "int8") == {"count": 500, "ranges": "percentile 99.99"}
    for mode in ("float32", "float16", "dynamic"):
        assert cfg.calibration_for("resnet8", "tflite", mode) == {}
    # the exporter samples at most the training split, which --limit-train shortens
    assert StudyConfig(**CHOSEN, limit_train=300).calibration_for("resnet8", "onnx", "int8")["count"] == 300


def test_int8_calibrated_otherwise_is_re_exported(tmp_path):
    minmax500 = {"split": "train", "count": 500, "seed": 0, "ranges": "min/max"}
    run = _bundle(tmp_path, [("tflite", "float32", None), ("tflite", "dynamic", None),
                             ("tflite", "int8", minmax500), ("tflite", "qat", {"split": "train", "count": 500}),
                             ("onnx", "float32", None), ("onnx", "int8", {**minmax500, "ranges": "percentile 99.99"})])
    tfl, onnx = ["float32", "dynamic", "int8", "qat"], ["float32", "int8"]
    cfg = StudyConfig(**CHOSEN)
    # the seed cell asks for what it has
    assert _missing(cfg, run, SEED, "tflite", tfl) == [] and _missing(cfg, run, SEED, "onnx", onnx) == []
    # ResNet-8: 2,000 images and TFLite percentile ranges; float and dynamic models stay
    assert _missing(cfg, run, RESNET8, "tflite", tfl) == ["int8", "qat"]
    assert _missing(cfg, run, RESNET8, "onnx", onnx) == ["int8"]
    # ranges alone (count as asked), per format; QAT's ranges are never compared
    assert _missing(plain(tflite_calib_percentile=99.99), run, SEED, "tflite", tfl) == ["int8"]
    assert _missing(plain(tflite_calib_percentile=99.99), run, SEED, "onnx", onnx) == ["int8"]
    # count alone (ranges as asked)
    assert _missing(plain(calib_size=2000), run, SEED, "tflite", tfl) == ["int8", "qat"]
    assert _missing(plain(calib_size=2000, onnx_calib_percentile=99.99), run, SEED, "onnx", onnx) == ["int8"]
    assert missing_modes(run, "tflite", tfl) == []  # nothing asked: only presence and hashes count


def test_entries_without_ranges_are_min_max_and_without_count_unknown(tmp_path):
    run = _bundle(tmp_path, [("tflite", "int8", {"split": "train", "count": 500, "seed": 0}),
                             ("onnx", "int8", {"ranges": "min/max"})])
    cfg = plain()
    assert _missing(cfg, run, SEED, "tflite", ["int8"]) == []  # a manifest from before the ranges key
    assert _missing(plain(tflite_calib_percentile=99.99), run, SEED, "tflite", ["int8"]) == ["int8"]
    assert _missing(cfg, run, SEED, "onnx", ["int8"]) == ["int8"]  # no count: not known to be as asked


@pytest.mark.parametrize("kw,needle", [
    (dict(arch_calib_size={"vgg": 2000}), "arch_calib_size: unknown"),
    (dict(arch_calib_size={"resnet8": 0}), "arch_calib_size counts must be integers >= 1"),
    (dict(arch_tflite_calib_percentile={"vgg": 99.99}), "arch_tflite_calib_percentile: unknown"),
    (dict(arch_onnx_calib_percentile={"vgg": 99.99}), "arch_onnx_calib_percentile: unknown"),
    (dict(tflite_calib_percentile=50), "tflite_calib_percentile must be in (50, 100]"),
    (dict(onnx_calib_percentile=100.5), "onnx_calib_percentile must be in (50, 100]"),
    (dict(arch_tflite_calib_percentile={"resnet8": 30}), "arch_tflite_calib_percentile resnet8 must be in"),
    (dict(arch_onnx_calib_percentile={"seed": float("nan")}), "arch_onnx_calib_percentile seed must be in"),
    (dict(calib_size="many"), "calib_size must be an integer"),
    (dict(arch_seeds={"resnet8": 1.5}), "arch_seeds counts must be integers"),
])
def test_bad_calibration_settings_are_one_line_errors(kw, needle):
    with pytest.raises(ValueError) as e:
        plain(**kw).validate()
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_config_file_sets_what_has_no_flag_and_typed_options_win(tmp_path):
    from study.__main__ import config
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"tflite_calib_percentile": 99.9, "arch_calib_size": {"resnet8": 2000, "seed": 800},
                             "seeds": 5, "val_size": 100}))
    cfg = config(*parse(["--config", str(f), "--seeds", "3"]))
    assert cfg.tflite_calib_percentile == 99.9 and cfg.arch_calib_size == {"resnet8": 2000, "seed": 800}
    assert cfg.seeds == 3 and cfg.val_size == 100  # typed beats the file; the file beats the defaults
    assert config(*parse(["--config", str(f)])).seeds == 5
    assert config(*parse([])) == StudyConfig()
    # a study's own config.json reruns it
    again = tmp_path / "again.json"
    again.write_text(json.dumps(StudyConfig(**CHOSEN, seeds=2).to_dict()))
    assert config(*parse(["--config", str(again)])) == StudyConfig(**CHOSEN, seeds=2)
