"""Keras's own download and cache of the official CIFAR-10 arrays (what papers report on)."""
from __future__ import annotations

import numpy as np

from train.data.errors import DataError


def read(_path=None) -> tuple:
    import tf_keras as keras
    try:
        (xtr, ytr), (xte, yte) = keras.datasets.cifar10.load_data()
    except Exception as e:  # urllib/HTTP/OS errors all mean the same thing to the user
        raise DataError("--data official needs the CIFAR-10 download (~/.keras/datasets), which "
                        f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}; offline, use "
                        "the shipped copy (default) or --data PATH") from None
    return xtr, ytr.reshape(-1).astype(np.int64), xte, yte.reshape(-1).astype(np.int64)
