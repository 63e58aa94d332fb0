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


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or platform.machine()
    for key in ("model name", "Model", "Hardware"):  # x86, Raspberry Pi, other ARM boards
        for line in info.splitlines():
            if line.split(":")[0].strip() == key:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


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


MACHINE_KEYS = ("cpu", "arch", "cores")


def machine() -> dict:
    """What decides speed: the same CPU model, architecture and core count make timings comparable
    (not the kernel release or host name, which change with every boot of the same kind of VM)."""
    return dict(zip(MACHINE_KEYS, (cpu_model(), platform.machine(), os.cpu_count())))


def provenance(**extra) -> dict:
    return {"device": device(), "versions": versions(), "git_commit": git_commit(), **extra}
