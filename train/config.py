"""The training stage's one config. Written as config.json into every run folder; together with
the data file's sha256 it is everything needed to rerun."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path


# The registries' keys, spelled out so that bad names fail before TensorFlow loads (seconds);
# tests/train/test_models.py checks they match train.activations / models. Recipes are read from
# their registry itself (train/recipes.py imports no TensorFlow), since experiments add to it.
ACT_NAMES = ("relu", "tanhexp")
ARCH_NAMES = ("seed", "resnet8")


def recipe_names() -> tuple:
    from train.recipes import RECIPES
    return tuple(RECIPES)


class RunExists(Exception):
    """The run folder holds a different run's files."""


@dataclass
class TrainConfig:
    act: str = "tanhexp"            # registry key in train.activations.ACTIVATIONS
    arch: str = "seed"              # registry key in train.models.ARCHS
    recipe: str = "seed"            # registry key in train.recipes.RECIPES
    epochs: int = 50                # seed recipe: 50 epochs
    batch_size: int = 100           # seed recipe: batch 100 (global, across replicas)
    lr: float | None = None         # None: the recipe's (1e-3, Adam's default, as the seed used it)
    weight_decay: float | None = None  # None: the recipe's; else AdamW's decoupled decay (x lr per step)
    label_smoothing: float | None = None  # None: the recipe's; else the smoothing a of the loss, 0 <= a < 1
    seed: int = 0
    data: str | None = None         # None -> $EDGECNN_DATA or the shipped JPEG copy
    val_size: int = 5000            # carved from train; 0 trains on all 50,000 like the seed
    out: str | None = None          # run folder; default runs/<arch>-<act>-s<seed>
    mixed_precision: bool = False   # float16 on GPU, bfloat16 on CPUs with it (train.precision)
    cpu_replicas: int = 1           # > 1: MirroredStrategy over that many logical CPU devices
    deterministic: bool = False     # tf.config.experimental.enable_op_determinism()
    limit_train: int | None = None  # first N training images (quick runs, tests)
    verbose: int = 1                # 1: Keras progress bar, 2: a line per epoch, 0: silent

    def run_dir(self) -> Path:
        # The seed recipe keeps the short name its runs have always had.
        recipe = "" if self.recipe == "seed" else f"{self.recipe}-"
        return Path(self.out or f"runs/{self.arch}-{recipe}{self.act}-s{self.seed}")

    def validate(self) -> None:
        checks = [
            (self.recipe in recipe_names(), f"unknown --recipe {self.recipe!r}; choose from {', '.join(recipe_names())}"),
            (self.act in ACT_NAMES, f"unknown --act {self.act!r}; choose from {', '.join(ACT_NAMES)}"),
            (self.arch in ARCH_NAMES, f"unknown --arch {self.arch!r}; choose from {', '.join(ARCH_NAMES)}"),
            (self.epochs > 0, f"--epochs must be > 0, got {self.epochs}"),
            (self.batch_size > 0, f"--batch-size must be > 0, got {self.batch_size}"),
            (self.lr is None or (self.lr > 0 and math.isfinite(self.lr)), f"--lr must be a finite number > 0, got {self.lr}"),
            (self.weight_decay is None or (self.weight_decay >= 0 and math.isfinite(self.weight_decay)),
             f"weight_decay must be a finite number >= 0, got {self.weight_decay}"),
            (self.label_smoothing is None or 0 <= self.label_smoothing < 1,
             f"label_smoothing must be in [0, 1), got {self.label_smoothing}"),
            (self.seed >= 0, f"--seed must be >= 0, got {self.seed}"),
            (self.val_size >= 0, f"--val-size must be >= 0, got {self.val_size}"),
            (isinstance(self.cpu_replicas, int) and 1 <= self.cpu_replicas <= 64,
             f"--cpu-replicas must be an integer in 1..64, got {self.cpu_replicas}"),
            (self.limit_train is None or self.limit_train > 0, f"--limit-train must be > 0, got {self.limit_train}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, path) -> "TrainConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def from_dict(cls, d) -> "TrainConfig":
        """A saved config.json's object; keys this version does not know (data_source...) are dropped,
        but a retired setting that was on means a run this version cannot reproduce."""
        if not isinstance(d, dict):
            raise ValueError(f"not a JSON object: {type(d).__name__}")
        from train.recipes import RETIRED
        on = {k: d[k] for k in RETIRED if d.get(k) not in (None, RETIRED[k])}
        if on:
            raise ValueError(f"the run was trained with {on}, a setting this version no longer has")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    # What may differ between a run and its resumption without changing the result.
    RESUME_FREE = ("verbose", "out", "cpu_replicas")  # replicas: the same global batch, schedule and epochs

    def same_run(self, other: "TrainConfig") -> bool:
        a, b = self.resolved(), other.resolved()
        return all(a[k] == b[k] for k in a if k not in self.RESUME_FREE)

    def resolved(self) -> dict:
        # --lr left at its default means the recipe's: a run saved with "lr": 0.001 (before the
        # recipe carried it) is the same run as one asking for the recipe's 1e-3. Label smoothing
        # likewise: a run saved before the override existed is the recipe's.
        from train.recipes import RECIPES, recipe_of
        d = self.to_dict()
        if self.recipe in RECIPES:
            d["lr"] = recipe_of(self).lr
            d["label_smoothing"] = recipe_of(self).label_smoothing  # likewise: absent = the recipe's
        return d
