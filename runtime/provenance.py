"""Where a number came from: device, library versions, git commit. Standard library only."""
from __future__ import annotations

import importlib.metadata as md
import os
import platform
import subprocess
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]


def git_commit(repo: Path = _REPO) -> str | None:
    """The checkout's commit (with '-dirty' if it has uncommitted changes), or None off git."""
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("GIT_COMMIT") or None


def _cpuinfo() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:  # macOS, Windows
        return None


def cpu_model() -> str:
    info = _cpuinfo()
    if info is None:
        return platform.processor() or platform.machine()
    for key in ("model name", "Model", "Hardware"):  # x86, Raspberry Pi, other ARM boards
        for line in info.splitlines():
            if line.split(":")[0].strip() == key:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    info = _cpuinfo() if cpuinfo is None else cpuinfo
    for line in (info or "").splitlines():
        if line.split(":")[0].strip() in ("flags", "Features"):  # x86, ARM
            return set(line.split(":", 1)[1].split())
    return set()


# The vector extensions that decide how fast convolutions, int8 and bfloat16 run. The model name
# alone does not: two VMs both called "AMD EPYC", one with AVX-512/AVX512_BF16 and one with AVX2
# only, trained ResNet-8 at 23 s and 98 s an epoch (docs/results.md).
SPEED_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
               "amx_tile", "amx_int8", "amx_bf16",                      # x86
               "asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2")  # ARM (Pi 4: asimd; Pi 5: + dotprod)


def isa(flags: set[str] | None = None) -> str:
    """The speed-relevant extensions this CPU has, in SPEED_FLAGS order ('' where unknown)."""
    have = cpu_flags() if flags is None else flags
    return " ".join(f for f in SPEED_FLAGS if f in have)


def versions(packages=("numpy", "tensorflow", "tf_keras", "tensorflow-model-optimization",
                       "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "tflite-runtime")) -> dict:
    out = {"python": platform.python_version()}
    for p in packages:
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            pass
    return out


def device() -> dict:
    return {**machine(), "os": f"{platform.system()} {platform.release()}", "hostname": platform.node()}


MACHINE_KEYS = ("cpu", "arch", "cores", "isa")


def machine() -> dict:
    """What decides speed: the same CPU model, architecture, core count and vector extensions make
    timings comparable (not the kernel release or host name, which change with every boot of the
    same kind of VM). Records written before "isa" existed read it as missing, so they compare
    with each other as before but never with a newer one."""
    return dict(zip(MACHINE_KEYS, (cpu_model(), platform.machine(), os.cpu_count(), isa())))


def provenance(**extra) -> dict:
    return {"device": device(), "versions": versions(), "git_commit": git_commit(), **extra}
