"""`--model FILE`: act, arch and mode come from an export manifest beside the file, only
when it lists this very file (name and sha256); otherwise the row stays unlabeled."""
from __future__ import annotations

import json
import shutil

from tests.runtime.rt_helpers import edit_manifest, run_cli

from runtime.bundle import bare_artifacts, sibling_labels


def _labels(path):
    (art,) = bare_artifacts([path]).artifacts
    return art.act, art.arch, art.mode


def test_labels_from_the_manifest_beside_the_file(bundle_copy):
    assert _labels(bundle_copy / "int8.tflite") == ("relu", "tiny", "int8")
    # the manifest's mode wins over the file name's guess
    edit_manifest(bundle_copy, lambda m: m["artifacts"][0].update(mode="float16"))
    first = json.loads((bundle_copy / "manifest.json").read_text())["artifacts"][0]["file"]
    assert _labels(bundle_copy / first)[2] == "float16"


def test_no_labels_unless_the_manifest_vouches_for_the_file(bundle_copy, tmp_path):
    elsewhere = tmp_path / "alone"
    elsewhere.mkdir()
    shutil.copy(bundle_copy / "int8.tflite", elsewhere / "int8.tflite")
    assert _labels(elsewhere / "int8.tflite") == (None, None, "int8")  # no manifest: name guess
    shutil.copy(bundle_copy / "int8.tflite", bundle_copy / "int8_copy.tflite")
    assert _labels(bundle_copy / "int8_copy.tflite")[:2] == (None, None)  # not listed
    with open(bundle_copy / "float32.tflite", "ab") as f:
        f.write(b"\0")  # listed, but not the file the manifest hashed
    assert sibling_labels(bundle_copy / "float32.tflite") == {}
    for junk in ("{not json", "[]", '{"schema": "other/1"}', json.dumps({"schema": "edge-bundle/1"})):
        (bundle_copy / "manifest.json").write_text(junk)
        assert sibling_labels(bundle_copy / "int8.tflite") == {}


def test_report_keeps_two_bare_sets_apart(tiny_bundle, tmp_path):
    """A ReLU and a TanhExp export benched with --model under one label: two What-to-ship rows
    and a TanhExp vs ReLU pair, as from --bundle (before, both were act '?' and merged)."""
    te = shutil.copytree(tiny_bundle, tmp_path / "te")
    edit_manifest(te, lambda m: m["source_run"].update(act="tanhexp"))
    outs = []
    for name, folder in (("relu", tiny_bundle), ("te", te)):
        outs.append(tmp_path / f"{name}.json")
        r = run_cli("runtime.bench", "--model", folder / "float32.tflite", "--model", folder / "int8.tflite",
                    "--data", folder / "test.npz", "--reference", folder / "reference.npz",
                    "--runs", "5", "--warmup", "1", "--in-process", "--label", "box", "--no-progress",
                    "--json", outs[-1])
        assert r.returncode == 0, r.stderr
    assert {row["act"] for row in json.loads(outs[1].read_text())["rows"]} == {"tanhexp"}
    r = run_cli("runtime.report", *outs, "--out", tmp_path / "rep", "--no-plots")
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "rep" / "report.md").read_text()
    ship = md.split("What to ship")[1].split("##")[0]
    assert "| box | relu | tiny |" in ship and "| box | tanhexp | tiny |" in ship
    pairs = md.split("## TanhExp vs ReLU")[1].split("##")[0]
    assert "| box | tiny | tflite | int8 |" in pairs


def test_an_unreadable_file_gets_no_labels_not_an_exception(bundle_copy, monkeypatch):
    import runtime.bundle as rb

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(rb, "sha256_file", refuse)
    assert sibling_labels(bundle_copy / "int8.tflite") == {}
