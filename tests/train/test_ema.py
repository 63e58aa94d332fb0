"""Weight averaging (train/ema.py): the average against numpy's, validation of the averages with
training going on from the raw weights, the average through a checkpoint, and the trainer's
--ema end to end."""
import json
import os
from dataclasses import replace

import numpy as np
import pytest
import tf_keras as keras

from train.ema import SwapEMAWeights, averages, finalize, swap
from train.recipes import RECIPES, optimizer

M = 0.8


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    opt = optimizer(replace(RECIPES["strong-sgd"], ema=M), 0.05, 100)  # the trainer's: Nesterov SGD, cosine
    model.compile(opt, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _data(n=64, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6)).astype("float32"), rng.integers(0, 3, n)


def _flat(variables):
    return np.concatenate([np.ravel(v.numpy()) for v in variables])


def test_fit_validates_and_saves_the_numpy_average_and_trains_on_the_raw_weights():
    model, (x, y), (xv, yv) = _model(), _data(), _data(32, seed=2)
    steps, at_epoch_end = [_flat(model.trainable_variables)], []
    log = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda b, logs: steps.append(_flat(model.trainable_variables)),
        on_epoch_end=lambda e, logs: at_epoch_end.append(_flat(model.trainable_variables)))
    hist = model.fit(x, y, batch_size=16, epochs=2, validation_data=(xv, yv), shuffle=False, verbose=0,
                     callbacks=[SwapEMAWeights(), log])
    # after each validation pass the raw weights are back: the epoch ends on its last step's weights
    np.testing.assert_array_equal(at_epoch_end[0], steps[4])
    np.testing.assert_array_equal(at_epoch_end[1], steps[8])
    avg = steps[0]
    for w in steps[1:]:
        avg = M * avg + (1 - M) * w
    assert np.abs(avg - steps[-1]).max() > 1e-3  # the average is not the last weights
    # fit leaves the average in the model (what the trainer saves)
    np.testing.assert_allclose(_flat(model.trainable_variables), avg, rtol=1e-5, atol=1e-6)
    # and the last validation pass judged those weights, not the raw ones
    assert hist.history["val_loss"][-1] == pytest.approx(model.evaluate(xv, yv, verbose=0), rel=1e-5)


def test_swap_is_its_own_inverse_and_needs_an_average():
    model, (x, y) = _model(), _data()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # leaves weights == averages (finalized)
    for v in model.trainable_variables:
        v.assign_add(np.ones(v.shape, "float32"))  # raw weights that differ from the averages
    raw, avg = _flat(model.trainable_variables), _flat(averages(model.optimizer, model.trainable_variables))
    assert np.abs(raw - avg).min() > 0.5
    swap(model.optimizer, model.trainable_variables)
    np.testing.assert_array_equal(_flat(model.trainable_variables), avg)
    np.testing.assert_array_equal(_flat(averages(model.optimizer, model.trainable_variables)), raw)
    swap(model.optimizer, model.trainable_variables)
    np.testing.assert_array_equal(_flat(model.trainable_variables), raw)
    with pytest.raises(ValueError, match="use_ema"):
        averages(keras.optimizers.SGD(0.1), model.trainable_variables)


def test_average_survives_a_checkpoint_restored_before_the_optimizer_is_built(tmp_path):
    """The trainer's resume: a checkpoint saved at an epoch's end (raw weights, averages in the
    optimizer), restored into a fresh model before any step builds the optimizer's slots."""
    import tensorflow as tf
    x, y = _data()
    ref = _model()
    ref.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)  # uninterrupted

    a, saved = _model(), {}
    ck = tf.train.Checkpoint(model=a, optimizer=a.optimizer)

    def save(epoch, logs):
        saved["avg"] = _flat(averages(a.optimizer, a.trainable_variables))
        saved["raw"] = _flat(a.trainable_variables)
        ck.save(str(tmp_path / "ck"))
    a.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0,
          callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=save)])
    assert np.abs(saved["avg"] - saved["raw"]).max() > 1e-3

    b = _model(seed=5)
    tf.train.Checkpoint(model=b, optimizer=b.optimizer).restore(tf.train.latest_checkpoint(tmp_path)).expect_partial()
    b.optimizer.build(b.trainable_variables)  # the slots appear now, and take the saved values
    np.testing.assert_array_equal(_flat(b.trainable_variables), saved["raw"])
    np.testing.assert_array_equal(_flat(averages(b.optimizer, b.trainable_variables)), saved["avg"])
    b.fit(x, y, batch_size=16, epochs=2, initial_epoch=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(_flat(b.trainable_variables), _flat(ref.trainable_variables), rtol=1e-5, atol=1e-6)

    # killed after its last checkpoint: the resumed run fits nothing, and saves the checkpoint's average
    c = _model(seed=6)
    tf.train.Checkpoint(model=c, optimizer=c.optimizer).restore(tf.train.latest_checkpoint(tmp_path)).expect_partial()
    finalize(c.optimizer, c.trainable_variables)
    np.testing.assert_array_equal(_flat(c.trainable_variables), saved["avg"])


def test_trainer_ema_flag_end_to_end(tmp_path, tiny_folder):
    from train.__main__ import parse
    from train.config import TrainConfig
    from train.loop import train
    from train.models import build
    from train.recipes import recipe_of

    with pytest.raises(SystemExit):  # an experiment option, not a user one (docs/decisions.md)
        parse(["--ema", "0.99"])
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="ema"):
            TrainConfig(ema=bad).validate()
    # a run saved before the option existed (no key) is the recipe's, so it resumes; another is another run
    assert TrainConfig(recipe="strong-sgd", ema=0.0).same_run(TrainConfig(recipe="strong-sgd"))
    assert not TrainConfig(recipe="strong-sgd", ema=0.99).same_run(TrainConfig(recipe="strong-sgd"))
    assert recipe_of(TrainConfig(recipe="strong-sgd", ema=0.99)) == replace(RECIPES["strong-sgd"], ema=0.99)

    os.environ["EDGECNN_DATA"] = str(tiny_folder)
    try:
        m = train(TrainConfig(act="relu", recipe="strong-sgd", epochs=1, val_size=40, ema=0.9,
                              out=str(tmp_path / "r"), verbose=0))
    finally:
        del os.environ["EDGECNN_DATA"]
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["ema"] == 0.9 and cfg["recipe_settings"]["ema"] == 0.9
    assert 0 <= m["test_accuracy"] <= 1
    saved = keras.models.load_model(tmp_path / "r" / "model.keras", compile=False)
    assert len(saved.get_weights()) == len(build("seed", "relu", batch_norm=True).get_weights())

    # experiments.ema_check: the checkpoint's averaged weights are the saved model's, its raw ones are not
    from train.data import load
    from experiments.ema_check import check, main
    os.environ["EDGECNN_DATA"] = str(tiny_folder)
    try:
        r = check(tmp_path / "r")
        data = load(None, 40, 0)
    finally:
        del os.environ["EDGECNN_DATA"]
    saved.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert r["val_accuracy_averaged"] == pytest.approx(saved.evaluate(data.x_val, data.y_val, verbose=0)[1])
    assert r["checkpoint_epoch"] == 1 and r["ema"] == 0.9 and r["max_abs_weight_difference"] > 1e-3
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "config.json").write_text(json.dumps({"recipe": "strong-sgd"}))
    assert main([str(tmp_path / "plain")]) == 2 and main([str(tmp_path / "none")]) == 2


def test_swap_reaches_through_a_float16_loss_scale_optimizer():
    """On a GPU, mixed precision is float16 and compile wraps the optimizer in a
    LossScaleOptimizer: the averages are the inner optimizer's."""
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model, (x, y) = _model(), _data()
        assert type(model.optimizer).__name__.startswith("LossScaleOptimizer")
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    avg = _flat(averages(model.optimizer, model.trainable_variables))
    np.testing.assert_array_equal(_flat(model.trainable_variables), avg)  # fit finalized through the wrapper
    for v in model.trainable_variables:
        v.assign_add(np.ones(v.shape, "float32"))
    swap(model.optimizer, model.trainable_variables)
    np.testing.assert_array_equal(_flat(model.trainable_variables), avg)
