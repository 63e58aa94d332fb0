"""Quantization-aware fine-tuning (tensorflow-model-optimization) and its int8 TFLite.

tfmot's default registry knows Conv2D, Dense, pooling and ReLU but not our activation layers,
so TanhExp (and export/lowering.py's LoweredTanhExp, which is what actually gets exported)
get an explicit QuantizeConfig: no weights, and one fake-quant on the output, 8-bit,
per-tensor, asymmetric (TanhExp's output range [-0.35, inf) is lopsided around zero), with
moving-average ranges. That is exactly the output quantization the int8 kernels will apply.

Callable without the export CLI: `model_q, info = fine_tune(model, splits)` then
`to_tflite_int8(model_q, calib_images)`.
"""
from __future__ import annotations

import contextlib
import sys
import time

import numpy as np

from runtime.backends import NORMALIZATION


def _tfmot():
    import tensorflow_model_optimization as tfmot
    return tfmot.quantization.keras


def output_quantize_config():
    """A QuantizeConfig instance for stateless activation layers (built lazily: tfmot is heavy)."""
    Q = _tfmot()

    class ActivationOutputQuantizeConfig(Q.QuantizeConfig):
        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [Q.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                        narrow_range=False)]

        def get_config(self):
            return {}

    return ActivationOutputQuantizeConfig


def quantize_aware(model):
    """Annotate every layer (activations with our config, the rest with tfmot's defaults) and
    return the quantize-aware clone; weights are kept."""
    import tf_keras as keras

    from export.lowering import LoweredTanhExp
    from train.activations import TanhExp

    Q = _tfmot()
    cfg_cls = output_quantize_config()

    def annotate(layer):
        if isinstance(layer, (TanhExp, LoweredTanhExp)):
            return Q.quantize_annotate_layer(layer, quantize_config=cfg_cls())
        if isinstance(layer, keras.layers.InputLayer):
            return layer.__class__.from_config(layer.get_config())
        return Q.quantize_annotate_layer(layer)

    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    scope = {"ActivationOutputQuantizeConfig": cfg_cls, "TanhExp": TanhExp, "LoweredTanhExp": LoweredTanhExp}
    with Q.quantize_scope(scope):
        return Q.quantize_apply(annotated)


@contextlib.contextmanager
def _ema_decay(decay: float):
    """Temporarily run tfmot's moving-average range update with another decay.

    MovingAverageQuantizer hard-codes 0.999 and tfmot starts every range at [-6, 6] without
    zero-debiasing, so after n steps a range is still 0.999^n parts its initial value: 40 %
    after a 2-epoch fine-tune of a 45,000-image split, 94 % on a 3,000-image quick run."""
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops
    original = quant_ops.MovingAvgQuantize

    def patched(*args, **kwargs):
        kwargs["ema_decay"] = decay
        return original(*args, **kwargs)

    quant_ops.MovingAvgQuantize = patched
    try:
        yield
    finally:
        quant_ops.MovingAvgQuantize = original


def calibrate_ranges(qmodel, images: np.ndarray) -> None:
    """Set every activation range to the min/max over `images` (floats), as post-training
    calibration would, before fine-tuning starts. One training-mode pass with decay 0: each
    range becomes its batch range, and since a layer quantizes with its updated range within
    the same pass, every layer downstream already sees correctly quantized inputs. Weights are
    untouched (a forward pass computes no gradients)."""
    import tensorflow as tf
    with _ema_decay(0.0):
        qmodel(tf.constant(images), training=True)


def _dataset(x, y, batch: int, seed: int | None, normalization=NORMALIZATION):
    import tensorflow as tf
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if seed is not None:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    scale, offset = (tf.constant(v, tf.float32) for v in normalization)  # runtime.backends.normalize, in TF
    return ds.batch(batch).map(lambda a, b: (tf.cast(a, tf.float32) * scale + offset, b)).prefetch(2)


def _EpochLine(epochs):
    import tf_keras as keras

    class EpochLine(keras.callbacks.Callback):
        # Keras prints progress to stdout; stdout belongs to the parity table, so log to stderr
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            vals = " ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items())
            print(f"qat epoch {epoch + 1}/{epochs}: {vals} ({time.perf_counter() - self.t0:.0f} s)",
                  file=sys.stderr, flush=True)

    return EpochLine()


def _labels(model, x, y, normalization=NORMALIZATION):
    return y, "sparse_categorical_crossentropy"


def _float_model(model, x, y, normalization=NORMALIZATION):
    # Self-distillation: the float model's own probabilities are the targets, so fine-tuning
    # pulls the int8 model towards the model it must agree with (lowering and rounding errors
    # both) instead of towards the labels, which QAT fits better than the float model did
    # (+0.3..0.6 pt accuracy on the seed nets, but only ~91 % top-1 agreement with them).
    import tf_keras as keras
    probs = model.predict(_dataset(x, y, 500, None, normalization), verbose=0).astype(np.float32)
    return probs, keras.losses.KLDivergence()


# What QAT fits (`--qat-target`): name -> (targets for images x, loss). Keras's "accuracy"
# then measures accuracy against labels, or top-1 agreement against the float model.
QAT_TARGETS = {"labels": _labels, "float": _float_model}


def fine_tune(model, splits, epochs: int = 2, lr: float = 1e-4, batch_size: int = 100, seed: int = 0,
              lowering: str | None = "bounded3", calib: np.ndarray | None = None,
              verbose: int = 2, target: str = "labels", normalization=NORMALIZATION) -> tuple[object, dict]:
    """QAT-fine-tune a trained float model on splits' training split (validated on its val split).

    `lowering`: which export/lowering.py formula replaces TanhExp first (None keeps TanhExp).
    `calib`: float images (a training-split sample) to initialize the quantization ranges.
    `target`: a QAT_TARGETS key: fit the labels, or the float model's own outputs."""
    import tf_keras as keras

    from export.lowering import lowered_copy
    keras.utils.set_random_seed(seed)
    make = QAT_TARGETS[target]
    y_fit, loss = make(model, splits.x_train, splits.y_train, normalization)
    base = lowered_copy(model, lowering) if lowering else model
    qmodel = quantize_aware(base)
    if calib is not None:
        calibrate_ranges(qmodel, calib)
    qmodel.compile(keras.optimizers.Adam(lr), loss, ["accuracy"])
    val = _dataset(splits.x_val, make(model, splits.x_val, splits.y_val, normalization)[0], 500, None,
                   normalization) if len(splits.y_val) else None
    t0 = time.perf_counter()
    hist = qmodel.fit(_dataset(splits.x_train, y_fit, batch_size, seed, normalization), epochs=epochs,
                      validation_data=val, verbose=0, callbacks=[_EpochLine(epochs)] if verbose else [])
    h = hist.history
    what = "accuracy" if target == "labels" else "agreement"  # with the labels / with the float model
    info = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "train_images": int(len(splits.y_train)),
            "target": target, "ranges_calibrated_on": 0 if calib is None else int(len(calib)),
            "seconds": round(time.perf_counter() - t0, 2),
            f"final_{what}": round(float(h["accuracy"][-1]), 6)}
    if "val_accuracy" in h:
        info[f"final_val_{what}"] = round(float(h["val_accuracy"][-1]), 6)
    return qmodel, info


def fine_tune_job(job) -> tuple[object, dict]:
    c = job.cfg
    return fine_tune(job.model, job.splits, c.qat_epochs, c.qat_lr, c.qat_batch_size, seed=c.calib_seed,
                     lowering=job.lowering("qat") or None, calib=job.calib(), verbose=2, target=c.qat_target,
                     normalization=job.normalization)


def to_tflite_int8(qmodel, calib: np.ndarray) -> bytes:
    """int8 in/out. The fake-quant ranges fix every quantized tensor; the calibration sample is
    still needed for the tensors inside the activation (MINIMUM/EXP/TANH) that carry none."""
    from export.tflite import convert_int8
    return convert_int8(qmodel, calib)
