"""The bench on an emulated Raspberry Pi 5 and Pi 4 (arm64 Python under qemu-user) gives the
same answers as on x86. Timings under emulation mean nothing; correctness does.

Needs /work/shared/tools/pi-python (or $PI_PYTHON) set up once with `pi-python --setup`.
Run: python -m pytest tests/runtime -m pi
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.runtime.rt_helpers import QDQ_Y_SCALE, REPO, qdq_conv_reference, run_cli, saturating_qdq_conv

# CI lays shared/ beside the clone, as the developers have it: ../shared/tools/pi-python
TOOL = Path(os.environ.get("PI_PYTHON", REPO.parent / "shared" / "tools" / "pi-python"))
PI_ROOT = Path(os.environ.get("PI_ROOT", Path.home() / ".cache" / "pi-python"))
ARGS = ("--limit", "100", "--runs", "3", "--warmup", "1", "--batch", "16", "--no-progress")

pytestmark = [
    pytest.mark.pi,
    pytest.mark.skipif(not TOOL.is_file(), reason=f"{TOOL} not found"),
    pytest.mark.skipif(shutil.which("qemu-aarch64-static") is None, reason="no qemu-aarch64-static"),
    pytest.mark.skipif(not (PI_ROOT / "sysroot/usr/bin/python3.11").exists(),
                       reason=f"pi-python not set up ({TOOL} --setup)"),
]


def _load(tmp: Path):
    doc = json.loads((tmp / "r.json").read_text())
    with np.load(tmp / "p.npz", allow_pickle=False) as z:
        return doc, {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def x86(tiny_bundle, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("x86")
    r = run_cli("runtime.bench", "--bundle", tiny_bundle, *ARGS, "--json", tmp / "r.json",
                "--save-probs", tmp / "p.npz")
    assert r.returncode == 0, r.stderr
    return _load(tmp)


@pytest.mark.parametrize("pi", ["5", "4"])
def test_emulated_pi_agrees_with_x86(tiny_bundle, x86, tmp_path, pi):
    env = {**os.environ, "PI": pi, "PI_PATH": str(REPO)}
    env.pop("PYTHONPATH", None)
    r = subprocess.run([str(TOOL), "-m", "runtime.bench", "--bundle", str(tiny_bundle), *ARGS,
                        "--json", str(tmp_path / "r.json"), "--save-probs", str(tmp_path / "p.npz"),
                        "--label", f"pi{pi}-emulated"], env=env, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    doc, probs = _load(tmp_path)
    ref_doc, ref_probs = x86
    dev = doc["provenance"]["device"]
    assert dev["arch"] == "aarch64" and f"Raspberry Pi {pi}" in dev["cpu"]
    # the vector extensions, read from the emulated board's cpuinfo: what makes Pi 5 timings differ
    assert dev["isa"] == {"4": "asimd", "5": "asimd asimdhp asimddp"}[pi]

    rows = {x["file"]: x for x in doc["rows"]}
    for want in ref_doc["rows"]:
        got = rows[want["file"]]
        assert got["error"] is None, got["error"]
        p, q = probs[want["file"]], ref_probs[want["file"]]
        if want["mode"] == "int8":
            # integer kernels may differ by a rounding step between x86 and ARM, not more
            assert np.mean(p.argmax(1) == q.argmax(1)) >= 0.99
            assert np.abs(p - q).max() <= 2 / 256 + 1e-7
            assert abs(got["accuracy"] - want["accuracy"]) <= 0.01
        else:
            assert np.abs(p - q).max() <= 1e-5
            assert got["accuracy"] == want["accuracy"]
            assert got["agreement_ref"] == want["agreement_ref"]


def test_emulated_pi_int8_onnx_is_exact(tmp_path):
    # ARM's int8 kernels sum in int32: the conv built to saturate x86's u8s8 pairs must give
    # what the QDQ graph specifies (numpy), with no session option asked for
    model = tmp_path / "conv_int8.onnx"
    w = saturating_qdq_conv(model)
    images = np.random.default_rng(1).integers(0, 256, (8, 8, 8, 3), dtype=np.uint8)
    images[0] = 255
    np.savez(tmp_path / "d.npz", x=images)
    env = {**os.environ, "PI": "5", "PI_PATH": str(REPO)}
    env.pop("PYTHONPATH", None)
    r = subprocess.run([str(TOOL), "-m", "runtime.bench", "--model", str(model), "--data", str(tmp_path / "d.npz"),
                        "--batch", "1", "--runs", "2", "--warmup", "0", "--no-progress", "--int8-kernels", "fast",
                        "--json", str(tmp_path / "r.json"), "--save-probs", str(tmp_path / "p.npz")],
                       env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    doc, probs = _load(tmp_path)
    (row,) = doc["rows"]
    assert doc["provenance"]["device"]["arch"] == "aarch64"
    assert row["error"] is None and row["int8_arith"] == "exact"
    got, ref = probs[row["file"]], qdq_conv_reference(images, w)
    assert np.abs(got - ref).max() <= QDQ_Y_SCALE + 1e-5 and np.mean(np.abs(got - ref) > 1e-5) < 0.02
    assert np.abs(got[0] - ref[0]).max() <= QDQ_Y_SCALE + 1e-5  # the image that saturates on x86


@pytest.mark.parametrize("name", ["int8.tflite", "float32.onnx"])
def test_emulated_pi_profiles_a_model(tiny_bundle, tmp_path, name):
    """runtime.profile works with what a Pi installs: LiteRT's flatbuffer tools for the prefix
    models of a .tflite file, ONNX Runtime's profiler for a .onnx one."""
    env = {**os.environ, "PI": "5", "PI_PATH": str(REPO)}
    env.pop("PYTHONPATH", None)
    r = subprocess.run([str(TOOL), "-m", "runtime.profile", str(tiny_bundle / name), "--runs", "5",
                        "--json", str(tmp_path / "p.json")], env=env, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["provenance"]["device"]["arch"] == "aarch64"
    ops = {row["block"] for row in doc["rows"]}
    assert ("CONV_2D" in ops) if name.endswith(".tflite") else (ops & {"Conv", "FusedConv"})
    assert sum(row["share"] for row in doc["rows"]) == pytest.approx(100)


def test_emulated_pi_reads_an_image_folder_as_x86_does(tiny_bundle, tmp_path):
    """`--data FOLDER` with what a Pi installs (numpy, Pillow, the runtimes): the same images,
    labels and probabilities as on x86. The folder holds the bundle's test images at 40x40, so
    both sides also resize them to the model's 32x32."""
    from PIL import Image
    with np.load(tiny_bundle / "test.npz") as z:
        x, y = z["x"][:40], z["y"][:40]
    for split in ("train", "test"):
        for i, (img, label) in enumerate(zip(x, y)):
            d = tmp_path / "imgs" / split / f"class{label}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).resize((40, 40), Image.BILINEAR).save(d / f"{i:03d}.png")
    model, args = str(tiny_bundle / "float32.onnx"), ("--data", str(tmp_path / "imgs"), "--runs", "2", "--warmup", "0")
    r = run_cli("runtime.bench", "--model", model, *args, "--no-progress", "--json", tmp_path / "x.json",
                "--save-probs", tmp_path / "x.npz")
    assert r.returncode == 0, r.stderr
    env = {**os.environ, "PI": "5", "PI_PATH": str(REPO)}
    env.pop("PYTHONPATH", None)
    r = subprocess.run([str(TOOL), "-m", "runtime.bench", "--model", model, *args, "--no-progress",
                        "--json", str(tmp_path / "r.json"), "--save-probs", str(tmp_path / "p.npz")],
                       env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    pi, x86 = (json.loads((tmp_path / f).read_text()) for f in ("r.json", "x.json"))
    assert pi["provenance"]["device"]["arch"] == "aarch64"
    assert pi["data"]["count"] == x86["data"]["count"] and pi["data"]["classes"] == x86["data"]["classes"]
    assert pi["rows"][0]["accuracy"] == x86["rows"][0]["accuracy"]
    with np.load(tmp_path / "p.npz") as p, np.load(tmp_path / "x.npz") as q:
        assert np.abs(p[model] - q[model]).max() <= 1e-5
