"""train(cfg): the seed recipe as a resumable, device-agnostic Keras fit.

Why it is faster than the seed's `model.fit(float arrays)`: images stay uint8 in memory and
are scaled to [0, 1] inside the input pipeline, batches are gathered by index and prefetched
while the previous step runs, and the order of every epoch is a pure function of (seed, epoch)
so that a resumed run sees exactly the batches an uninterrupted one would have.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from runtime.fileio import write_json, write_text
from runtime.provenance import git_commit, machine, provenance
from train.config import RunExists, TrainConfig

HISTORY_KEYS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    # Seeded by (seed, epoch), not by a running RNG, so resuming at epoch k reproduces epoch k.
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int32)


def train_dataset(x, y, cfg: TrainConfig, first_epoch: int) -> tf.data.Dataset:
    from train.recipes import RECIPES, augment

    n = len(y)
    epochs = np.arange(first_epoch, cfg.epochs, dtype=np.int64)
    orders = np.stack([epoch_order(cfg.seed, e, n) for e in epochs])
    xs, ys = tf.constant(x), tf.constant(y)
    do_augment, do_crop = RECIPES[cfg.recipe].augment, RECIPES[cfg.recipe].crop

    def gather(epoch, step, idx):
        img = tf.cast(tf.gather(xs, idx), tf.float32) / 255.0
        if do_augment:
            img = augment(img, tf.stack([tf.cast(cfg.seed, tf.int64), epoch * 100_003 + step]), crop=do_crop)
        return img, tf.gather(ys, idx)

    def batches(epoch, order):
        b = tf.data.Dataset.from_tensor_slices(order).batch(cfg.batch_size)
        return b.enumerate().map(lambda step, idx: (epoch, step, idx))

    # Batches never straddle two epochs: each epoch's order is batched on its own.
    ds = (tf.data.Dataset.from_tensor_slices((epochs, orders))
          .flat_map(batches)
          .map(gather, num_parallel_calls=tf.data.AUTOTUNE)
          .prefetch(tf.data.AUTOTUNE))
    return _shard_by_data(ds)


def eval_dataset(x, y, batch_size: int) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    ds = ds.map(lambda a, b: (tf.cast(a, tf.float32) / 255.0, b)).cache().prefetch(tf.data.AUTOTUNE)
    return _shard_by_data(ds)


def _shard_by_data(ds):
    # In-memory data has no files to shard by; multi-worker training splits it by element.
    opt = tf.data.Options()
    opt.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(opt)


class EpochLog(keras.callbacks.Callback):
    """history.csv rewritten (atomically) after every epoch, then the checkpoint saved.

    That order makes kill -9 safe: history may hold one epoch more than the checkpoint,
    and on resume rows past the checkpoint are dropped and that epoch is trained again."""

    def __init__(self, rows: list[dict], run: Path, save_ckpt, plot):
        super().__init__()
        self.rows, self.run, self.save_ckpt, self.plot = rows, run, save_ckpt, plot

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, **{k: float(logs[k]) for k in HISTORY_KEYS[1:5] if k in logs},
               "seconds": round(time.perf_counter() - self.t0, 3)}
        self.rows.append(row)
        write_history(self.run / "history.csv", self.rows)
        self.save_ckpt(epoch + 1)
        self.plot(self.rows)


def write_history(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[k for k in HISTORY_KEYS if not rows or k in rows[0]])
    w.writeheader()
    w.writerows(rows)
    write_text(path, buf.getvalue())


def read_history(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in r.items()} for r in csv.DictReader(f)]


def save_model(model, path: Path) -> None:
    # Keras insists on a '.keras' suffix, so the temporary name keeps it; rename is atomic.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.partial.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _prepare_run_dir(cfg: TrainConfig, run: Path, clean: bool = True) -> dict | None:
    """Refuse to mix runs; return the finished metrics if this exact run is already done.
    Only the chief cleans (`clean`); the other workers of a cluster only read the folder."""
    cfg_file = run / "config.json"
    if cfg_file.exists():
        try:
            old = TrainConfig.from_json(cfg_file)
        except (ValueError, TypeError) as e:
            raise RunExists(f"{cfg_file} is unreadable ({e}); move it away or choose another --out") from None
        if not old.same_run(cfg):
            new = cfg.resolved()
            diff = {k: (v, new[k]) for k, v in old.resolved().items() if k not in TrainConfig.RESUME_FREE and v != new[k]}
            raise RunExists(f"{run} holds a different run (differs in {diff}); choose another --out")
    elif run.exists() and not run.is_dir():
        raise RunExists(f"--out {run} is a file, not a folder")
    elif run.exists() and any(p not in _killed_leftovers(run) for p in run.iterdir()):
        raise RunExists(f"{run} is not empty and has no config.json; choose another --out")
    for p in _killed_leftovers(run) if clean else ():  # this run's folder, and nothing but the trainer writes these names
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    if cfg_file.exists() and (run / "metrics.json").exists() and (run / "model.keras").exists():
        return json.loads((run / "metrics.json").read_text())
    return None


def _killed_leftovers(run: Path) -> list[Path]:
    """The trainer's own temporary names, which a kill -9 leaves behind (it skips every cleanup):
    atomic writes' .NAME.XXXX.tmp, save_model's .partial.keras, TensorFlow's half-saved
    ckpt-N_temp/. A run killed while writing its first config.json must still resume, so these
    do not make a folder "not empty"."""
    if not run.is_dir():
        return []
    names = ("config.json", "history.csv", "metrics.json", "accuracy.png")
    return ([p for n in names for p in run.glob(f".{n}.*.tmp")] + list(run.glob(".model.*.partial.keras"))
            + list(run.glob("ckpt*/ckpt-*_temp")))


def build_run_model(cfg: TrainConfig, num_classes: int, **kwargs):
    """The run's network: its architecture and activation, with batch norm as its recipe says
    (None: the architecture's own)."""
    from train.models import build
    from train.recipes import RECIPES

    bn = RECIPES[cfg.recipe].batch_norm
    return build(cfg.arch, cfg.act, num_classes=num_classes, **kwargs, **({} if bn is None else {"batch_norm": bn}))


def train(cfg: TrainConfig, strategy_name: str | None = None, devices=None) -> dict:
    """Train one run. Under MultiWorkerMirroredStrategy every worker calls this with the same cfg:
    the chief writes the run folder, the others a temporary folder removed at the end, and all of
    them resume from the chief's checkpoints (so the run folder must be on storage every worker
    sees, as for TensorFlow's own BackupAndRestore)."""
    from train.distribute import read_tf_config, setup

    cfg.validate()
    cluster = read_tf_config()  # a bad TF_CONFIG fails here, before the run folder is touched
    # The code that trains is the checkout's now: the commit at the end (in provenance) can differ
    # when the checkout moves on during an hour-long run.
    commit_at_start = git_commit()
    run = cfg.run_dir()
    done = _prepare_run_dir(cfg, run, clean=cluster.is_chief)
    if done is not None:
        print(f"{run}: already trained ({done['epochs']} epochs, test accuracy "
              f"{done['test_accuracy']:.4f}); nothing to do", file=sys.stderr)
        return done
    # First of all TensorFlow: the multi-worker strategy must exist before the context does.
    name, strategy, cluster = setup(cfg.cpu_replicas, strategy_name, devices, cluster)
    if cluster.is_chief:
        return _train(cfg, run, run, strategy, name, cluster, commit_at_start)
    # Named after the run and the task, so that a worker killed with -9 (no cleanup runs) has its
    # leftovers removed when its command is rerun.
    tag = hashlib.sha256(str(run.resolve()).encode()).hexdigest()[:12]
    scratch = Path(tempfile.gettempdir()) / f"edgecnn-{tag}-{cluster.task_type}{cluster.task_index}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        return _train(cfg, scratch, run, strategy, name, cluster, commit_at_start)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _train(cfg: TrainConfig, run: Path, chief_run: Path, strategy, name: str, cluster, commit_at_start) -> dict:
    """`run` is where this worker writes; `chief_run` is where checkpoints are read from."""
    from train.data import load
    from train.distribute import all_agree, describe_devices
    from train.plots import plot_history
    from train.precision import cpu_flags, mixed_policy
    from train.recipes import loss, optimizer, recipe_of

    data = load(cfg.data, cfg.val_size, cfg.seed)  # before mkdir: bad data leaves no empty run folder
    if cfg.limit_train:
        data.x_train, data.y_train = data.x_train[:cfg.limit_train], data.y_train[:cfg.limit_train]
    if data.x_train.shape[1:] != (32, 32, 3):
        h, w = data.x_train.shape[1:3]
        raise ValueError(f"the data's images are {w}x{h}; python -m train's models take 32x32 RGB images "
                         "(python -m export --model takes a model of any input size)")
    print(data.describe(), file=sys.stderr)
    # Decided before the run folder exists: a machine without fast low precision fails cleanly.
    precision = mixed_policy(len(tf.config.list_logical_devices("GPU")), cpu_flags()) if cfg.mixed_precision \
        else "float32"
    run.mkdir(parents=True, exist_ok=True)

    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(cfg.seed)
    where = describe_devices(strategy)
    if cluster.workers > 1:
        where += f", {cluster.workers} workers"
    print(f"training {cfg.arch}/{cfg.act} on {where} ({name} strategy, {cluster.describe()})", file=sys.stderr)

    policy = keras.mixed_precision.global_policy()
    if cfg.mixed_precision:
        keras.mixed_precision.set_global_policy(precision)
        print(f"mixed precision: {precision}", file=sys.stderr)
    try:
        with strategy.scope():
            model = build_run_model(cfg, len(data.classes), final_dtype="float32" if cfg.mixed_precision else None)
            recipe = recipe_of(cfg)
            # Steps count global batches: the schedule is the same on any number of replicas and workers.
            opt = optimizer(recipe, recipe.lr, cfg.epochs * math.ceil(len(data.y_train) / cfg.batch_size))
            model.compile(opt, loss(recipe), ["accuracy"])
            epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False)
            ckpt = tf.train.Checkpoint(model=model, optimizer=opt, epoch=epoch_var)
        # The recipe's resolved settings too: a recipe name alone would let a run trained before the
        # recipe changed pass for a run of the current one.
        # And the machine: epoch times (experiments.sweep's time ratios) compare only on the same one.
        write_json(run / "config.json", {**cfg.to_dict(), "data_source": data.source,
                                         "recipe_settings": dataclasses.asdict(recipe_of(cfg)),
                                         "device": machine()})
        # Every worker must save (saving reads variables through collectives), each into its own
        # folder; all restore from the chief's.
        manager = tf.train.CheckpointManager(ckpt, str(run / "ckpt"), max_to_keep=1)
        latest = tf.train.latest_checkpoint(str(chief_run / "ckpt"))
        first = 0
        if latest:
            ckpt.restore(latest).expect_partial()
            first = int(epoch_var.numpy())
            print(f"resuming {chief_run} after epoch {first}", file=sys.stderr)
        if not all_agree(strategy, first):
            raise ValueError(f"the workers resume after different epochs (this one: {first}); every worker must "
                             f"see the chief's run folder {chief_run} (shared storage) to resume")
        rows = [r for r in read_history(chief_run / "history.csv") if r["epoch"] <= first]

        def save_ckpt(epoch):
            epoch_var.assign(epoch)
            try:
                manager.save(checkpoint_number=epoch)
            except tf.errors.OpError:  # e.g. a full disk: no half-written checkpoint left behind
                for partial in (run / "ckpt").glob("ckpt-*_temp"):
                    shutil.rmtree(partial, ignore_errors=True)
                raise

        title = f"{cfg.arch} / {cfg.act} (seed {cfg.seed})"
        callbacks = [EpochLog(rows, run, save_ckpt, lambda r: plot_history(r, run / "accuracy.png", title)),
                     keras.callbacks.TensorBoard(str(run / "tb"), write_graph=False, profile_batch=0)]
        steps = math.ceil(len(data.y_train) / cfg.batch_size)
        val = eval_dataset(data.x_val, data.y_val, cfg.batch_size) if len(data.y_val) else None
        if first < cfg.epochs:
            model.fit(train_dataset(data.x_train, data.y_train, cfg, first), epochs=cfg.epochs,
                      initial_epoch=first, steps_per_epoch=steps, validation_data=val,
                      callbacks=callbacks, verbose=cfg.verbose if cluster.is_chief else 0)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    if cfg.mixed_precision:
        # What is saved, tested and exported is the float32 model: the same (float32) variables
        # in a graph without casts, so export and a device never see a mixed-precision policy.
        twin = build_run_model(cfg, len(data.classes))
        twin.set_weights(model.get_weights())
        twin.compile(keras.optimizers.Adam(), loss(recipe), ["accuracy"])  # test loss = the val loss's kind
        model = twin
    test_loss, test_acc = model.evaluate(eval_dataset(data.x_test, data.y_test, 500), verbose=0)

    save_model(model, run / "model.keras")
    metrics = summarize(rows, cfg, data, float(test_acc), float(test_loss), where, name, model.count_params(), precision)
    metrics["git_commit_at_start"] = commit_at_start  # of this process: a resumed run started earlier
    metrics["weights_sha256"] = weights_digest(model)
    write_json(run / "metrics.json", metrics)
    print(f"{chief_run if cluster.is_chief else cluster.describe()}: test accuracy {test_acc:.4f}, best val "
          f"{metrics['best_val_accuracy']} at epoch {metrics['best_val_epoch']}, {metrics['wall_time_s']:.0f} s, "
          f"weights sha256 {metrics['weights_sha256'][:16]}", file=sys.stderr)
    return metrics


def weights_digest(model) -> str:
    """sha256 over every weight's bytes in order: equal digests, identical models (workers, reruns)."""
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def summarize(rows, cfg, data, test_acc, test_loss, where, strategy, params, precision="float32") -> dict:
    vals = [r.get("val_accuracy", float("nan")) for r in rows]
    best = int(np.nanargmax(vals)) if rows and not all(math.isnan(v) for v in vals) else None
    secs = sum(r["seconds"] for r in rows)
    return {
        "test_accuracy": round(test_acc, 6), "test_loss": round(test_loss, 6),
        "best_val_accuracy": None if best is None else round(vals[best], 6),
        "best_val_epoch": None if best is None else rows[best]["epoch"],
        "final_val_accuracy": None if not rows or best is None else round(vals[-1], 6),
        "epochs": len(rows), "wall_time_s": round(secs, 2),
        "images_per_s": round(len(data.y_train) * len(rows) / secs, 1) if secs else None,
        "params": params, "trained_on": where, "strategy": strategy, "precision": precision,
        "data": data.source, "arch": cfg.arch, "act": cfg.act, "seed": cfg.seed,
        **provenance(),
    }
