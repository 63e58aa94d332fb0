"""ONNX Runtime's int8 arithmetic on x86 (runtime/backends/onnxrt.py): without VNNI its fast
kernels add products in saturating 16-bit pairs; the bench picks the exact ones there."""
from __future__ import annotations

import numpy as np
import pytest

from tests.runtime.rt_helpers import QDQ_Y_SCALE, qdq_conv_reference, saturating_qdq_conv
from runtime.backends.onnxrt import X64_EXACT, OnnxBackend, session_options, u8s8_saturates


def test_which_cpus_saturate():
    assert u8s8_saturates("x86_64", {"avx", "avx2", "fma"})
    assert u8s8_saturates("AMD64", {"sse4_1"})
    assert not u8s8_saturates("x86_64", {"avx2", "avx512f", "avx512_vnni"})
    assert not u8s8_saturates("x86_64", {"avx2", "avx_vnni"})
    assert not u8s8_saturates("aarch64", {"asimd"})  # a Pi: exact kernels


@pytest.mark.parametrize("kernels, saturates, entry, arith", [
    ("auto", True, "1", "exact"), ("auto", False, "", "exact"),
    ("exact", False, "1", "exact"), ("fast", True, "", "saturating"), ("fast", False, "", "exact")])
def test_session_options_policy(kernels, saturates, entry, arith):
    so, got = session_options(2, kernels, saturates)
    try:
        set_to = so.get_session_config_entry(X64_EXACT[0])
    except RuntimeError:  # onnxruntime raises for a key never set
        set_to = ""
    assert set_to == entry and got == arith
    assert so.intra_op_num_threads == 2


@pytest.fixture(scope="module")
def qdq(tmp_path_factory):
    path = tmp_path_factory.mktemp("qdq") / "conv_int8.onnx"
    w = saturating_qdq_conv(path)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (8, 8, 8, 3), dtype=np.uint8)
    images[0] = 255  # every pair of products saturates in channel 0
    return path, images, qdq_conv_reference(images, w)


def _run(path, images, kernels):
    b = OnnxBackend.load(path, normalization=(1 / 255, 0.0), layout_hint="NCHW", int8_kernels=kernels)
    try:
        return b.run(images, batch=1), b.int8_arith
    finally:
        b.close()


def test_bench_default_gives_the_models_answers(qdq):
    path, images, ref = qdq
    got, arith = _run(path, images, "auto")
    assert arith == "exact"
    # requantization may round a tie the other way: at most one output step, rarely
    assert np.abs(got - ref).max() <= QDQ_Y_SCALE + 1e-5 and np.mean(np.abs(got - ref) > 1e-5) < 0.02


def test_fast_kernels_saturate_where_the_cpu_lacks_vnni(qdq):
    path, images, ref = qdq
    got, arith = _run(path, images, "fast")
    if not u8s8_saturates():
        assert arith == "exact" and np.abs(got - ref).max() <= QDQ_Y_SCALE + 1e-5
        pytest.skip("this CPU's int8 kernels are exact (VNNI or not x86): nothing saturates")
    # the model above is built to hit the clamp: if it did not, the default test proves nothing
    assert arith == "saturating" and np.abs(got[0] - ref[0]).max() > 10 * QDQ_Y_SCALE


def test_bench_cli_records_and_notes_the_arithmetic(qdq, tmp_path):
    import json

    from tests.runtime.rt_helpers import run_cli
    path = qdq[0]
    for kernels in ("fast", "auto"):
        out = tmp_path / f"{kernels}.json"
        r = run_cli("runtime.bench", "--model", path, "--int8-kernels", kernels, "--runs", "3",
                    "--warmup", "0", "--no-progress", "--json", out)
        assert r.returncode == 0, r.stderr
        doc = json.loads(out.read_text())
        (row,) = doc["rows"]
        want = "saturating" if kernels == "fast" and u8s8_saturates() else "exact"
        assert doc["settings"]["int8_kernels"] == kernels and row["mode"] == "int8"
        assert row["int8_arith"] == want
        assert ("saturating int8 kernels" in r.stdout) == (want == "saturating"), r.stdout
    r = run_cli("runtime.bench", "--model", path, "--int8-kernels", "quick")
    assert r.returncode == 2 and "--int8-kernels" in r.stderr and "Traceback" not in r.stderr


def _entry_set(so) -> bool:
    try:
        return so.get_session_config_entry(X64_EXACT[0]) == "1"
    except RuntimeError:
        return False


def test_exact_kernels_that_fail_to_build_fall_back(qdq, monkeypatch):
    # ORT 1.32's exact-kernel rewrite fails on some valid graphs (TanhExp nets exported with
    # --onnx-activations int8): the bench must still measure the model and say which arithmetic ran
    import runtime.backends.onnxrt as onnxrt
    real, tried = onnxrt._open, []

    def picky(path, so):
        tried.append(_entry_set(so))
        if tried[-1]:
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Attempt to replace the existing tensor")
        return real(path, so)

    monkeypatch.setattr(onnxrt, "_open", picky)
    monkeypatch.setattr(onnxrt, "u8s8_saturates", lambda *a, **k: True)
    path, images, ref = qdq
    got, arith = _run(path, images, "auto")
    assert tried == [True, False] and arith == "saturating" and got.shape == ref.shape


def test_a_broken_file_is_one_error_with_either_kernels(tmp_path):
    from runtime.errors import ModelError
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    for kernels in ("exact", "fast"):
        with pytest.raises(ModelError, match="ONNX Runtime cannot load it"):
            OnnxBackend.load(bad, int8_kernels=kernels)
