"""Training recipes: `seed` is the published experiment as it was; `strong` is a better
lightweight recipe (augmentation, a learning-rate schedule, weight decay). One registry, so
the trainer has no if-chains about recipes.

Every ingredient of `strong` was kept or dropped on the validation split (5,000 training images
held out; the test split is never read to choose): `python -m experiments.ablation` tabulates the
runs, docs/results.md has the table. Weight decay was tried and dropped: AdamW at
5e-4 (x lr = 5e-7 per step, a no-op), none, and 0.05 gave 74.38 / 74.76 / 74.60 % validation
(TanhExp, seed 0), all within seed noise: with augmentation this 42k-parameter net underfits
(train accuracy ~72 % < validation), so a regularizer has nothing to fix.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

# TensorFlow is imported inside the functions that need it: the study reads the registry to
# check a finished run's recipe without loading TensorFlow.


@dataclass(frozen=True)
class Recipe:
    augment: bool = False        # random 32x32 crop of the 4-pixel zero-padded image + horizontal flip
    crop: bool = True            # with augment: False leaves the flip alone
    schedule: str = "constant"   # "constant" or "cosine" (decay to 0 over the run)
    weight_decay: float = 0.0    # decoupled (AdamW); 0 -> plain Adam, as the seed
    batch_norm: bool | None = None  # BN after each conv (folded at export); None: the architecture's own
    optimizer: str = "adam"      # "adam" (AdamW when weight_decay > 0) or "sgd" (Nesterov momentum 0.9)
    lr: float = 1e-3             # the peak learning rate; `train --lr` overrides it
    label_smoothing: float = 0.0  # cross-entropy against (1 - a) one-hot + a / classes


# Settings a Recipe once had, with the value at which they did nothing: a run folder that
# recorded one at that value is a run of today's recipe. Weight averaging (ema) was dropped on
# validation (docs/decisions.md, 2026-12-01); its code is in git at bff4e59.
RETIRED = {"ema": 0.0}


RECIPES = {
    "seed": Recipe(),
    "strong": Recipe(augment=True, schedule="cosine", batch_norm=True),
    # strong with the classic CIFAR ResNet optimizer (SGD, Nesterov momentum 0.9, peak lr 0.1, cosine);
    # ResNet-8 keeps its own L2 1e-4 (MLPerf Tiny's). Tried for ResNet-8 after strong (Adam 1e-3)
    # reached 83.5 % validation in 140 epochs: docs/results.md.
    "strong-sgd": Recipe(augment=True, schedule="cosine", batch_norm=True, optimizer="sgd", lr=0.1),
}


def register(name: str, recipe: Recipe) -> None:
    """Add a recipe for this process: experiments/ablation.py keeps its ablations and rejected
    variants there, so that `python -m train` offers only the recipes a user would choose."""
    if name in RECIPES and RECIPES[name] != recipe:
        raise ValueError(f"recipe {name!r} is already registered with other settings")
    RECIPES[name] = recipe


def recipe_of(cfg) -> Recipe:
    """The run's recipe: the registry's, with the config's overrides (a validation sweep's)."""
    overrides = {k: getattr(cfg, k, None) for k in ("weight_decay", "lr", "label_smoothing")}
    return replace(RECIPES[cfg.recipe], **{k: v for k, v in overrides.items() if v is not None})


def optimizer(recipe: Recipe, lr: float, total_steps: int):
    import tf_keras as keras

    rate = lr
    if recipe.schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(total_steps, 1))
    if recipe.optimizer == "sgd":
        return keras.optimizers.SGD(rate, momentum=0.9, nesterov=True, weight_decay=recipe.weight_decay or None)
    if recipe.weight_decay:
        return keras.optimizers.AdamW(learning_rate=rate, weight_decay=recipe.weight_decay)
    return keras.optimizers.Adam(rate)


def loss(recipe: Recipe):
    """The training loss: plain sparse cross-entropy, or its label-smoothed twin."""
    if not recipe.label_smoothing:
        return "sparse_categorical_crossentropy"
    from train.losses import SmoothedSparseCrossentropy
    return SmoothedSparseCrossentropy(recipe.label_smoothing)


def augment(x: tf.Tensor, seed: tf.Tensor, crop: bool = True) -> tf.Tensor:
    """Per-image random crop (pad 4) and flip of a float NHWC batch, stateless: the same
    (run seed, epoch, batch) always gives the same augmentation, so a resumed run is the
    uninterrupted run."""
    import tensorflow as tf

    b = tf.shape(x)[0]
    s1, s2, s3 = (tf.random.experimental.stateless_split(seed, 3)[i] for i in range(3))
    flip = tf.random.stateless_uniform([b], s3) < 0.5
    if not crop:
        return tf.where(flip[:, None, None, None], x[:, :, ::-1, :], x)
    padded = tf.pad(x, [[0, 0], [4, 4], [4, 4], [0, 0]])
    oy = tf.random.stateless_uniform([b], s1, 0, 9, dtype=tf.int32)
    ox = tf.random.stateless_uniform([b], s2, 0, 9, dtype=tf.int32)
    rows = oy[:, None] + tf.range(32)[None, :]
    cols = ox[:, None] + tf.range(32)[None, :]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    out = tf.gather(out, cols, axis=2, batch_dims=1)
    return tf.where(flip[:, None, None, None], out[:, :, ::-1, :], out)
