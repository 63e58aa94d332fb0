"""Weight averaging: validate and keep an exponential moving average (EMA) of the weights.

Why: ResNet-8 ends `strong-sgd` short of MLPerf Tiny's 85 %, and every recipe lever tried at
equal training time lost accuracy (docs/results.md). An average of the last few
thousand steps' weights costs no extra step and, in the CIFAR literature, often generalizes a
little better than the last weights. It is kept or dropped on the validation split like the rest.
Measured (docs/results.md, `python -m experiments.ema_check`): under strong-sgd's cosine
schedule, which decays to zero, the average lifts validation a lot mid-run but ends equal to the
raw weights, so it changes nothing there; it can matter for schedules that stop at a high rate.

The averaging itself is tf_keras's (`use_ema` on the optimizer: after every step, average =
m * average + (1 - m) * weight, on the trainable variables). Two things it leaves to us:
- Keras validates the raw weights during fit, and the keep-or-drop rule must judge the weights
  that will be deployed, so `SwapEMAWeights` puts the averages in for each validation pass
  and the raw weights back for training (what Keras 3's callback of that name does).
- Batch norm's moving mean and variance are not trainable, so they are not averaged: they track
  the raw weights. With a cosine schedule the raw weights barely move over the last epochs, so
  the two agree where it matters (the end); mid-run validation of the averages is approximate.
"""
from __future__ import annotations

import tf_keras as keras


def _inner(opt):
    return getattr(opt, "inner_optimizer", opt)  # a float16 LossScaleOptimizer wraps the real one


def averages(opt, variables) -> list:
    """The optimizer's moving average of each variable (tf_keras keeps them in a private list,
    indexed like its other slots)."""
    opt = _inner(opt)
    if not getattr(opt, "use_ema", False):
        raise ValueError(f"{type(opt).__name__} keeps no moving average (use_ema is off)")
    return [opt._model_variables_moving_average[opt._index_dict[opt._var_key(v)]] for v in variables]


def swap(opt, variables) -> None:
    """Exchange each variable's value with its moving average (its own inverse)."""
    for var, avg in zip(variables, averages(opt, variables)):
        raw = var.read_value()
        var.assign(avg.read_value())
        avg.assign(raw)


def finalize(opt, variables) -> None:
    """Put the averages into the variables: the weights that are saved. A run killed after its
    last checkpoint resumes with no step left to run, so nothing has built the optimizer's
    slots yet; building them now is what brings the checkpoint's averages in (tf.train.Checkpoint
    restores a slot when it is created). Once built, build is a no-op."""
    _inner(opt).build(variables)
    for var, avg in zip(variables, averages(opt, variables)):
        var.assign(avg.read_value())


class SwapEMAWeights(keras.callbacks.Callback):
    """Validation during fit sees the averaged weights; training goes on from the raw ones."""

    def on_test_begin(self, logs=None):
        swap(self.model.optimizer, self.model.trainable_variables)

    def on_test_end(self, logs=None):
        swap(self.model.optimizer, self.model.trainable_variables)
