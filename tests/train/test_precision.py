"""--mixed-precision picks the policy the hardware has (train.precision), and a run trained
under it saves, tests and exports a float32 model."""
import json
import os

import pytest

from train.precision import cpu_flags, mixed_policy

X86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes crc32 cpuid asimdhp\nCPU part\t: 0xd0b\n"


def test_cpu_flags_parses_x86_and_arm_cpuinfo():
    assert "avx512_bf16" in cpu_flags(X86)
    assert "asimd" in cpu_flags(ARM) and "avx512_bf16" not in cpu_flags(ARM)
    assert cpu_flags("") == set()


@pytest.mark.parametrize("gpus,flags,policy", [
    (1, set(), "mixed_float16"),
    (2, {"avx512_bf16"}, "mixed_float16"),     # a GPU wins over the CPU
    (0, {"avx512_bf16"}, "mixed_bfloat16"),
    (0, {"amx_bf16", "avx2"}, "mixed_bfloat16"),
])
def test_policy_follows_the_hardware(gpus, flags, policy):
    assert mixed_policy(gpus, flags) == policy


def test_no_fast_low_precision_is_an_error_not_a_slowdown():
    with pytest.raises(ValueError, match="needs a GPU or a CPU with bfloat16"):
        mixed_policy(0, cpu_flags(ARM))


def _fake_cpu(monkeypatch, flags):
    # The trainer reads the flags at call time (train.loop imports them inside train()), so a
    # patched reader decides the policy; TF's bfloat16 kernels themselves run on any x86 CPU
    # (emulated, slowly, without AVX512_BF16), so the run below is real on every CI machine.
    import tensorflow as tf

    import train.precision
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("a visible GPU decides the policy (mixed_float16), whatever the CPU")
    monkeypatch.setattr(train.precision, "cpu_flags", lambda cpuinfo=None: set(flags))


def test_bfloat16_run_saves_a_float32_model(tmp_path, tiny_folder, monkeypatch):
    import tf_keras as keras

    from train.activations import custom_objects
    from train.config import TrainConfig
    from train.loop import train
    _fake_cpu(monkeypatch, {"avx2", "avx512_bf16"})
    os.environ["EDGECNN_DATA"] = str(tiny_folder)
    try:
        m = train(TrainConfig(act="tanhexp", epochs=1, val_size=40, out=str(tmp_path / "r"), verbose=0,
                              mixed_precision=True))
    finally:
        del os.environ["EDGECNN_DATA"]
    assert m["precision"] == "mixed_bfloat16"
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["precision"] == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"  # restored for whatever runs next
    model = keras.models.load_model(tmp_path / "r" / "model.keras", custom_objects=custom_objects(), safe_mode=True)
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}


def test_no_bfloat16_cpu_refuses_before_the_run_folder_exists(tmp_path, tiny_folder, monkeypatch):
    from train.config import TrainConfig
    from train.loop import train
    _fake_cpu(monkeypatch, {"avx2", "fma"})   # e.g. an AVX2-only EPYC: no GPU, no bfloat16
    monkeypatch.setenv("EDGECNN_DATA", str(tiny_folder))
    with pytest.raises(ValueError, match="needs a GPU or a CPU with bfloat16"):
        train(TrainConfig(act="relu", epochs=1, val_size=40, out=str(tmp_path / "r"), verbose=0,
                          mixed_precision=True))
    assert not (tmp_path / "r").exists()
