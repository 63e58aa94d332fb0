"""Label-smoothed cross-entropy for integer labels.

tf_keras's SparseCategoricalCrossentropy has no `label_smoothing` (only the one-hot
CategoricalCrossentropy has), and our datasets yield integer labels, so this one-hots inside
the loss. A registered class, not a lambda, so that a model saved compiled with it reloads.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras


@keras.utils.register_keras_serializable(package="edgecnn")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of probabilities against (1 - a) * one_hot(y) + a / classes."""

    def __init__(self, smoothing: float = 0.1, name: str = "smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smoothing = float(smoothing)

    def call(self, y_true, y_pred):
        classes = tf.shape(y_pred)[-1]
        onehot = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), classes, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(onehot, y_pred, label_smoothing=self.smoothing)

    def get_config(self):
        return {**super().get_config(), "smoothing": self.smoothing}
