"""Which mixed-precision policy `--mixed-precision` means on this machine.

Keras's advice, made automatic: float16 compute on a GPU (tensor cores; a loss scale keeps small
gradients alive), bfloat16 on a CPU whose vector units multiply bfloat16 natively (x86
AVX512_BF16 or AMX: oneDNN then runs convolutions and matmuls in bfloat16 at up to twice the
float32 rate; bfloat16 keeps float32's exponent range, so no loss scale is needed). Anywhere else
mixed precision only adds casts, so asking for it there is an error rather than a slowdown.
Variables stay float32 under both policies and the softmax is kept in float32 (train.models).
"""
from __future__ import annotations

from runtime.provenance import cpu_flags  # noqa: F401  (re-exported: the trainer reads it here)

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def mixed_policy(n_gpus: int, flags: set[str]) -> str:
    """Pure decision, so every branch is testable on any machine."""
    if n_gpus:
        return "mixed_float16"
    if any(f in flags for f in BF16_CPU_FLAGS):
        return "mixed_bfloat16"
    raise ValueError("--mixed-precision needs a GPU or a CPU with bfloat16 arithmetic "
                     f"({' or '.join(BF16_CPU_FLAGS)}); this machine has neither")
