"""Training of lightweight CNNs (TanhExp vs ReLU). Heavy imports (TensorFlow) stay inside the
functions and modules that need them, so `import train` is cheap and has no side effects.

In your own code, a trained run loads with its TanhExp layers:

    import train
    model = train.load_model("runs/seed-tanhexp-s0/model.keras")
"""
from __future__ import annotations


def load_model(path, compile: bool = True):
    """A `model.keras` written by `python -m train` (or any tf_keras model using the project's
    TanhExp layer or the activation name "tanhexp"), loaded with Keras's safe deserialization:
    no code from the file runs. `compile=True` restores the loss and metrics, so
    `model.evaluate(x / 255, y)` works at once; `compile=False` skips the optimizer state."""
    import tf_keras as keras

    from train.activations import custom_objects
    return keras.models.load_model(path, custom_objects=custom_objects(), compile=compile, safe_mode=True)
