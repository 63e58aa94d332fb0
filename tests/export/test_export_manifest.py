"""The bundle contract (docs/bundle.md): manifest fields, hashes, arrays, and the runtime's
own reader accepting it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from export.formats import FORMATS, file_name
from export.lowering import LOWERINGS
from runtime.fileio import sha256_file

ENTRY_KEYS = {"file", "format", "mode", "sha256", "size_bytes", "input", "output", "ops", "lowering",
              "export_seconds", "parity"}
PARITY_KEYS = {"count", "test_accuracy", "agreement", "mean_abs_diff", "max_abs_diff"}


def test_top_level_fields(manifest, tanhexp_run):
    from train.data import CLASSES
    assert manifest["schema"] == "edge-bundle/1"
    assert manifest["created"].endswith("Z")
    src = manifest["source_run"]
    assert {"dir", "arch", "act", "seed", "data", "keras_test_accuracy", "git_commit"} <= set(src)
    assert (src["arch"], src["act"], src["seed"]) == ("seed", "tanhexp", 0)
    assert src["model_sha256"] == sha256_file(tanhexp_run / "model.keras")
    assert manifest["classes"] == list(CLASSES)
    inp = manifest["input"]
    assert inp == {"shape": [32, 32, 3], "layout": "NHWC", "source_dtype": "uint8",
                   "normalization": {"scale": 1 / 255, "offset": 0.0}}
    assert manifest["reference"]["key"] == "probs"


def test_every_mode_of_both_formats_is_listed_once(manifest):
    files = [a["file"] for a in manifest["artifacts"]]
    assert sorted(files) == sorted(file_name(f, m) for f in FORMATS for m in FORMATS[f])
    for a in manifest["artifacts"]:
        assert ENTRY_KEYS <= set(a) and PARITY_KEYS <= set(a["parity"])
        assert a["file"] == f"{a['mode']}.{a['format']}" and "/" not in a["file"]
        assert a["input"]["layout"] in ("NHWC", "NCHW")
        assert a["lowering"] in LOWERINGS  # a tanhexp run: every mode names its lowering


def test_hashes_and_sizes_match_the_files(bundle, manifest):
    for a in manifest["artifacts"]:
        path = bundle / a["file"]
        assert sha256_file(path) == a["sha256"] and path.stat().st_size == a["size_bytes"]
    for key in ("test_split", "reference"):
        assert sha256_file(bundle / manifest[key]["file"]) == manifest[key]["sha256"]


def test_arrays_are_plain_npz(bundle, manifest):
    with np.load(bundle / "test.npz", allow_pickle=False) as z:
        x, y = z["x"], z["y"]
    assert x.dtype == np.uint8 and x.shape[1:] == (32, 32, 3) and y.dtype == np.int64 and y.shape == (len(x),)
    assert manifest["test_split"]["count"] == len(x)
    assert all(a["parity"]["count"] == len(x) for a in manifest["artifacts"])


def test_int8_and_qat_are_integer_in_and_out(manifest):
    by = {a["file"]: a for a in manifest["artifacts"]}
    for name in ("int8.tflite", "qat.tflite"):
        assert by[name]["input"]["dtype"] == by[name]["output"]["dtype"] == "int8"
        assert by[name]["calibration"]["split"] == "train"
    assert by["float32.tflite"]["input"]["quantization"] is None
    assert by["qat.tflite"]["qat"]["epochs"] == 1


def test_runtime_reader_accepts_the_bundle(bundle):
    from runtime.bundle import load_bundle, verify
    inputs = load_bundle(bundle)
    assert len(inputs.artifacts) == 8
    for art in inputs.artifacts:
        assert art.problem is None and verify(art) == (True, None)


def test_io_entries_are_what_the_device_backend_reads(bundle, manifest):
    """Layout, dtype and quantization in the manifest come from the file as runtime.backends
    reads it (one layout rule, one quantization reader), and the normalization is the runtime's."""
    from runtime.backends import NORMALIZATION, get_backend
    assert tuple(manifest["input"]["normalization"].values()) == NORMALIZATION
    for a in manifest["artifacts"]:
        b = get_backend(a["format"]).load(bundle / a["file"])
        try:
            assert a["input"]["layout"] == b.layout == ("NCHW" if a["format"] == "onnx" else "NHWC")
            for side, spec in (("input", b.input), ("output", b.output)):
                assert a[side]["dtype"] == np.dtype(spec.dtype).name and a[side]["shape"] == list(spec.shape)
                want = {"scale": spec.scale, "zero_point": spec.zero_point} if spec.scale else None
                assert a[side]["quantization"] == want
        finally:
            b.close()


def test_config_json_is_the_export_config(bundle):
    from export.config import ExportConfig
    cfg = json.loads((bundle / "config.json").read_text())
    assert set(ExportConfig().to_dict()) <= set(cfg)
    assert cfg["format"] == "onnx" and cfg["quant"] == list(FORMATS["onnx"])  # the last export wins


def test_reexport_replaces_the_entry(bundle, tanhexp_run, tmp_path):
    import shutil

    from export.api import export
    from export.config import ExportConfig
    out = shutil.copytree(bundle, tmp_path / "b")
    before = json.loads((out / "manifest.json").read_text())
    after = export(ExportConfig(format="tflite", quant=["float32"], run=str(tanhexp_run), out=str(out)),
                   log=lambda m: None)
    assert [a["file"] for a in after["artifacts"]] == [a["file"] for a in before["artifacts"]]
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["artifacts"] == after["artifacts"]
    f32 = next(a for a in on_disk["artifacts"] if a["file"] == "float32.tflite")
    assert f32["sha256"] == sha256_file(out / "float32.tflite")
    # shared files were left alone (same arrays), so their recorded hashes still hold
    assert on_disk["test_split"] == before["test_split"]


def test_a_different_model_is_refused(bundle, relu_run, tmp_path):
    import shutil

    from export.api import export
    from export.config import ExportConfig
    from export.errors import BadInput
    out = shutil.copytree(bundle, tmp_path / "b")
    with pytest.raises(BadInput, match="different model"):
        export(ExportConfig(format="tflite", quant=["float32"], run=str(relu_run), out=str(out)))
