"""Which tf.distribute strategy to train under: TensorFlow's own engines, picked from what is visible.

- TF_CONFIG naming more than one worker -> MultiWorkerMirroredStrategy (synchronous all-reduce
  across machines; each worker runs the same command with its own TF_CONFIG task index);
- more than one GPU                     -> MirroredStrategy over them;
- otherwise                             -> the default strategy: one GPU if TensorFlow sees one
  (it places ops there by itself), else the CPU.
"""
from __future__ import annotations

import json
import os

import tensorflow as tf


def workers_in_tf_config(env=None) -> int:
    raw = (env if env is not None else os.environ).get("TF_CONFIG", "")
    if not raw:
        return 0
    try:
        return len(json.loads(raw).get("cluster", {}).get("worker", []))
    except (ValueError, AttributeError):
        raise ValueError("TF_CONFIG is not valid JSON with cluster.worker") from None


def choose(n_gpus: int, n_workers: int) -> str:
    """Pure decision, so every branch is testable on a CPU-only machine."""
    if n_workers > 1:
        return "multiworker"
    if n_gpus > 1:
        return "mirrored"
    return "default"


STRATEGIES = {
    "multiworker": lambda devices=None: tf.distribute.MultiWorkerMirroredStrategy(),
    "mirrored": lambda devices=None: tf.distribute.MirroredStrategy(devices=devices),
    "default": lambda devices=None: tf.distribute.get_strategy(),
}


def make_strategy(name: str | None = None, devices=None):
    """Strategy by name (tests pass logical CPU devices to 'mirrored'), else chosen from the machine."""
    if name is None:
        name = choose(len(tf.config.list_logical_devices("GPU")), workers_in_tf_config())
    return name, STRATEGIES[name](devices)


def describe_devices(strategy) -> str:
    """The device(s) training runs on, for the log and metrics.json."""
    gpus = tf.config.list_logical_devices("GPU")
    replicas = strategy.num_replicas_in_sync
    if gpus:
        names = []
        for d in tf.config.list_physical_devices("GPU"):
            try:
                names.append(tf.config.experimental.get_device_details(d).get("device_name", d.name))
            except Exception:  # details are best-effort across TF builds
                names.append(d.name)
        return f"{replicas} replica(s) on GPU: {', '.join(names)}"
    from runtime.provenance import cpu_model
    return f"{replicas} replica(s) on CPU: {cpu_model()}"
