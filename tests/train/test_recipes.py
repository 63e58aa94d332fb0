from dataclasses import replace

import numpy as np
import tensorflow as tf

from train.recipes import RECIPES, augment, optimizer


def test_augment_is_a_seeded_crop_and_flip():
    x = tf.constant(np.random.default_rng(0).random((16, 32, 32, 3), dtype=np.float32))
    seed = tf.constant([3, 7], tf.int64)
    a, b = augment(x, seed).numpy(), augment(x, seed).numpy()
    np.testing.assert_array_equal(a, b)  # stateless: resumable
    assert not np.array_equal(a, augment(x, tf.constant([3, 8], tf.int64)).numpy())
    padded = np.pad(x.numpy(), [(0, 0), (4, 4), (4, 4), (0, 0)])
    for img, src in zip(a, padded):  # every output is some 32x32 window of the padded image, maybe mirrored
        found = any(np.array_equal(img, w) or np.array_equal(img, w[:, ::-1])
                    for oy in range(9) for ox in range(9) for w in [src[oy:oy + 32, ox:ox + 32]])
        assert found


def test_recipes_build_their_optimizers():
    assert type(optimizer(RECIPES["seed"], 1e-3, 100)).__name__ == "Adam"
    assert type(optimizer(RECIPES["strong"], 1e-3, 100)).__name__ == "Adam"  # weight decay: dropped on validation
    opt = optimizer(replace(RECIPES["strong"], weight_decay=0.05), 1e-3, 100)
    assert type(opt).__name__ == "AdamW" and abs(float(opt.weight_decay) - 0.05) < 1e-9
    # what python -m train offers (a fresh interpreter: experiments add the ablations to theirs)
    import subprocess
    import sys
    got = subprocess.run([sys.executable, "-c", "from train.recipes import RECIPES; print(*sorted(RECIPES))"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert got == ["seed", "strong", "strong-sgd"]


def test_flip_only_augment_never_shifts():
    x = tf.constant(np.random.default_rng(1).random((32, 32, 32, 3), dtype=np.float32))
    a = augment(x, tf.constant([1, 2], tf.int64), crop=False).numpy()
    flipped = [np.array_equal(o, i[:, ::-1]) for o, i in zip(a, x.numpy())]
    same = [np.array_equal(o, i) for o, i in zip(a, x.numpy())]
    assert all(f or s for f, s in zip(flipped, same)) and any(flipped) and any(same)


def test_weight_decay_override_changes_only_the_decay():
    import pytest

    from train.config import TrainConfig
    from train.recipes import recipe_of
    assert recipe_of(TrainConfig(recipe="strong")) == RECIPES["strong"]
    r = recipe_of(TrainConfig(recipe="strong", weight_decay=0.05))
    assert r.weight_decay == 0.05 and r.augment and r.schedule == "cosine"
    opt = optimizer(recipe_of(TrainConfig(recipe="seed", weight_decay=0.01)), 1e-3, 10)
    assert type(opt).__name__ == "AdamW" and abs(float(opt.weight_decay) - 0.01) < 1e-9
    assert type(optimizer(recipe_of(TrainConfig(recipe="strong", weight_decay=0.0)), 1e-3, 10)).__name__ == "Adam"
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="weight_decay"):
            TrainConfig(weight_decay=bad).validate()


def test_strong_sgd_and_the_recipe_learning_rate():
    from train.config import TrainConfig
    from train.recipes import recipe_of
    r = recipe_of(TrainConfig(recipe="strong-sgd"))
    assert (r.optimizer, r.lr, r.augment, r.batch_norm, r.schedule) == ("sgd", 0.1, True, True, "cosine")
    opt = optimizer(r, r.lr, 100)
    assert type(opt).__name__ == "SGD" and opt.nesterov and abs(float(opt.momentum) - 0.9) < 1e-9
    assert recipe_of(TrainConfig(recipe="strong-sgd", lr=0.05)).lr == 0.05
    assert recipe_of(TrainConfig(recipe="strong")).lr == 1e-3
    # a run saved before the recipe carried its lr ("lr": 0.001) resumes under the default --lr
    assert TrainConfig(recipe="strong", lr=1e-3).same_run(TrainConfig(recipe="strong"))
    assert not TrainConfig(recipe="strong", lr=1e-2).same_run(TrainConfig(recipe="strong"))


def test_label_smoothing_loss_matches_numpy_and_reloads():
    import tf_keras as keras

    from train.losses import SmoothedSparseCrossentropy
    from train.recipes import loss
    assert loss(RECIPES["strong-sgd"]) == "sparse_categorical_crossentropy"
    fn = loss(replace(RECIPES["strong-sgd"], label_smoothing=0.1))
    assert isinstance(fn, SmoothedSparseCrossentropy) and fn.smoothing == 0.1
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(10), size=64).astype(np.float32)
    y = rng.integers(0, 10, size=(64, 1))
    target = np.eye(10)[y[:, 0]] * 0.9 + 0.01
    want = np.mean(-(target * np.log(p.astype(np.float64))).sum(1))
    assert abs(float(fn(y, p)) - want) < 1e-5
    # smoothing 0 is plain sparse cross-entropy
    plain = keras.losses.sparse_categorical_crossentropy(y, p).numpy().mean()
    assert abs(float(SmoothedSparseCrossentropy(0.0)(y, p)) - plain) < 1e-6
    again = keras.losses.deserialize(keras.losses.serialize(fn))
    assert isinstance(again, SmoothedSparseCrossentropy) and again.smoothing == 0.1


def test_label_smoothing_override_changes_only_the_loss():
    import pytest

    from train.__main__ import parse
    from train.config import TrainConfig
    from train.losses import SmoothedSparseCrossentropy
    from train.recipes import loss, recipe_of
    r = recipe_of(TrainConfig(recipe="strong-sgd", label_smoothing=0.1))
    assert r == replace(RECIPES["strong-sgd"], label_smoothing=0.1)
    fn = loss(r)
    assert isinstance(fn, SmoothedSparseCrossentropy) and fn.smoothing == 0.1
    # 0 is plain cross-entropy again
    assert loss(recipe_of(TrainConfig(recipe="strong-sgd", label_smoothing=0.0))) == "sparse_categorical_crossentropy"
    # a run saved before the override existed (no key: None) is the recipe's, so it resumes;
    # another smoothing is another run
    assert TrainConfig(recipe="strong-sgd", label_smoothing=0.0).same_run(TrainConfig(recipe="strong-sgd"))
    assert not TrainConfig(recipe="strong-sgd", label_smoothing=0.1).same_run(TrainConfig(recipe="strong-sgd"))
    with pytest.raises(SystemExit):  # an experiment option now, not a user one
        parse(["--label-smoothing", "0.2"])
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="label_smoothing"):
            TrainConfig(label_smoothing=bad).validate()


def test_a_retired_setting_reads_only_where_it_did_nothing():
    import pytest

    from train.config import TrainConfig
    assert TrainConfig.from_dict({"recipe": "strong-sgd", "ema": None}).same_run(TrainConfig(recipe="strong-sgd"))
    assert TrainConfig.from_dict({"recipe": "strong-sgd", "ema": 0.0}).recipe == "strong-sgd"
    with pytest.raises(ValueError, match="ema"):
        TrainConfig.from_dict({"recipe": "strong-sgd", "ema": 0.999})
