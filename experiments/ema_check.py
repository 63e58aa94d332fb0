"""Did weight averaging change the model? Validation accuracy of a run's raw and averaged weights.

    python -m experiments.ema_check runs/resnet8-strong-sgd-ema-relu-s0

Why: a `--ema` run validates and saves only the averaged weights (train/ema.py), so its history
cannot say whether the average, or the run itself, made its figure. Its last checkpoint holds
both: the raw weights in the model, the averages in the optimizer. With a cosine schedule that
decays to zero the two should agree at the end; if they do, the run's training is that of the
same recipe without `--ema`, and its validation figure is one more sample of that recipe.

Both are measured in float32 (the saved model's precision; the history's figures were computed
under the run's mixed-precision policy, so they can differ from these by a few images).
Validation split only: the test split is not read.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from runtime.cli import Parser


def check(run: Path) -> dict:
    import tensorflow as tf

    from train.config import TrainConfig
    from train.data import load
    from train.ema import averages, swap
    from train.loop import build_run_model, eval_dataset
    from train.recipes import optimizer, recipe_of

    cfg = TrainConfig.from_json(run / "config.json")
    recipe = recipe_of(cfg)
    if not recipe.ema:
        raise ValueError(f"{run} was trained without --ema: it has no averaged weights")
    latest = tf.train.latest_checkpoint(str(run / "ckpt"))
    if latest is None:
        raise ValueError(f"{run} has no checkpoint left ({run / 'ckpt'})")
    data = load(cfg.data, cfg.val_size, cfg.seed)
    if not len(data.y_val):
        raise ValueError(f"{run} was trained without a validation split")
    model = build_run_model(cfg, len(data.classes))
    opt = optimizer(recipe, recipe.lr, 1)  # the schedule's length does not matter: no step is taken
    model.compile(opt, "sparse_categorical_crossentropy", ["accuracy"])
    epoch = tf.Variable(0, dtype=tf.int64)
    tf.train.Checkpoint(model=model, optimizer=opt, epoch=epoch).restore(latest).expect_partial()
    opt.build(model.trainable_variables)  # the averages arrive from the checkpoint as their slots are made
    diff = max(float(tf.reduce_max(tf.abs(w - a)))
               for w, a in zip(model.trainable_variables, averages(opt, model.trainable_variables)))
    val = eval_dataset(data.x_val, data.y_val, 500)
    raw = model.evaluate(val, verbose=0)[1]
    swap(opt, model.trainable_variables)
    averaged = model.evaluate(val, verbose=0)[1]
    return {"run": str(run), "checkpoint_epoch": int(epoch.numpy()), "ema": recipe.ema,
            "val_accuracy_raw": float(raw), "val_accuracy_averaged": float(averaged),
            "max_abs_weight_difference": diff}


def main(argv=None) -> int:
    p = Parser(prog="python -m experiments.ema_check", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", type=Path, help="a run folder trained with --ema (its ckpt/ is read)")
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = p.parse_args(argv)
    from train.data.errors import DataError
    try:
        if not (args.run / "config.json").is_file():
            raise ValueError(f"{args.run} is not a run folder (no config.json)")
        r = check(args.run)
    except (ValueError, OSError, DataError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(f"{r['run']} (checkpoint after epoch {r['checkpoint_epoch']}, EMA {r['ema']}): validation "
          f"{100 * r['val_accuracy_raw']:.2f} % raw, {100 * r['val_accuracy_averaged']:.2f} % averaged; "
          f"largest weight difference {r['max_abs_weight_difference']:.2e}")
    if args.json:
        from runtime.fileio import write_json
        from runtime.provenance import provenance
        write_json(args.json, {**r, "command": "python -m experiments.ema_check " + " ".join(argv or sys.argv[1:]),
                               "provenance": provenance()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
