"""Which tf.distribute strategy to train under: TensorFlow's own engines, picked from what is visible.

- TF_CONFIG naming more than one worker -> MultiWorkerMirroredStrategy (synchronous all-reduce
  across machines; each worker runs the same command with its own TF_CONFIG task index);
- more than one GPU, or --cpu-replicas N -> MirroredStrategy over them;
- otherwise                             -> the default strategy: one GPU if TensorFlow sees one
  (it places ops there by itself), else the CPU.

Order matters: MultiWorkerMirroredStrategy configures collective ops, which TensorFlow allows
only before its context exists, and splitting the CPU into logical devices has the same rule.
So `setup()` runs before anything lists devices or creates a tensor, and everything else asks
it (`Cluster`) instead of TensorFlow.

The cluster is read without TensorFlow (`read_tf_config`), so a bad TF_CONFIG is a one-line
error before TensorFlow loads.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Cluster:
    """This process's place in a TF_CONFIG cluster (one worker alone when there is none)."""
    task_type: str = "worker"
    task_index: int = 0
    jobs: dict = field(default_factory=dict)   # job name -> list of "host:port"

    @property
    def workers(self) -> int:
        return sum(len(v) for k, v in self.jobs.items() if k in ("chief", "worker"))

    @property
    def is_chief(self) -> bool:
        # TensorFlow's convention: the "chief" task, or worker 0 where no chief is named.
        return self.task_type == "chief" or (self.task_type == "worker" and self.task_index == 0
                                             and "chief" not in self.jobs)

    def describe(self) -> str:
        return f"{self.task_type} {self.task_index} of {self.workers} worker(s)"


def read_tf_config(env=None) -> Cluster:
    """TF_CONFIG checked the way TensorFlow would use it; ValueError (one line) for anything else."""
    raw = (env if env is not None else os.environ).get("TF_CONFIG", "").strip()
    if not raw:
        return Cluster()
    try:
        cfg = json.loads(raw)
    except ValueError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e}); expected "
                         '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}') from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("cluster"), dict) or not cfg["cluster"]:
        raise ValueError("TF_CONFIG has no \"cluster\" object naming the workers")
    jobs = cfg["cluster"]
    for job, addrs in jobs.items():
        if job not in ("chief", "worker"):
            raise ValueError(f"TF_CONFIG job {job!r} is not supported; MultiWorkerMirroredStrategy uses chief and worker")
        if not isinstance(addrs, list) or not addrs or not all(_is_address(a) for a in addrs):
            raise ValueError(f"TF_CONFIG cluster.{job} must be a non-empty list of \"host:port\" strings, got {addrs!r}")
    if len(jobs.get("chief", [])) > 1:
        raise ValueError("TF_CONFIG names more than one chief")
    task = cfg.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ValueError("TF_CONFIG has no \"task\" with \"type\" and \"index\": which worker is this one?")
    kind, index = task["type"], task["index"]
    if kind not in jobs:
        raise ValueError(f"TF_CONFIG task type {kind!r} is not in the cluster ({', '.join(jobs)})")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(jobs[kind]):
        raise ValueError(f"TF_CONFIG task index {index!r} is out of range for {len(jobs[kind])} {kind} task(s)")
    return Cluster(kind, index, jobs)


def _is_address(a) -> bool:
    if not isinstance(a, str) or ":" not in a:
        return False
    host, port = a.rsplit(":", 1)
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def choose(n_gpus: int, n_workers: int, cpu_replicas: int = 1) -> str:
    """Pure decision, so every branch is testable on a CPU-only machine."""
    if n_workers > 1:
        return "multiworker"
    if n_gpus > 1 or cpu_replicas > 1:
        return "mirrored"
    return "default"


def _multiworker(devices):
    import tensorflow as tf
    return tf.distribute.MultiWorkerMirroredStrategy()


def _mirrored(devices):
    import tensorflow as tf
    return tf.distribute.MirroredStrategy(devices=devices)


def _default(devices):
    import tensorflow as tf
    return tf.distribute.get_strategy()


STRATEGIES = {"multiworker": _multiworker, "mirrored": _mirrored, "default": _default}


def setup(cpu_replicas: int = 1, name: str | None = None, devices=None, cluster: Cluster | None = None):
    """Create the strategy first, before the TensorFlow context exists. Returns (name, strategy,
    cluster). `cpu_replicas` > 1 splits the CPU into that many logical devices and mirrors over
    them: no faster, but the multi-device code path on any machine."""
    import tensorflow as tf

    cluster = cluster or read_tf_config()
    if cpu_replicas > 1 and cluster.workers > 1:
        raise ValueError("--cpu-replicas and a multi-worker TF_CONFIG do not combine; use one or the other")
    if cpu_replicas > 1:
        try:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
        except RuntimeError:
            raise ValueError("--cpu-replicas must be set before TensorFlow starts (call train() in a fresh process)") from None
        devices = devices or [d.name for d in tf.config.list_logical_devices("CPU")]
    if name is None:
        # Listing GPUs initialises the context: only after a multi-worker strategy exists.
        name = "multiworker" if cluster.workers > 1 else choose(len(tf.config.list_physical_devices("GPU")), 1, cpu_replicas)
    try:
        strategy = STRATEGIES[name](devices)
    except RuntimeError as e:
        if "program startup" in str(e):
            raise ValueError("TensorFlow was initialised before the multi-worker strategy could be made; "
                             "run training in a fresh process") from None
        raise
    return name, strategy, cluster


def describe_devices(strategy) -> str:
    """The device(s) training runs on, for the log and metrics.json."""
    import tensorflow as tf
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


def all_agree(strategy, value: int) -> bool:
    """True when every replica of every worker holds the same integer (e.g. the epoch it resumes
    after): a worker that cannot see the chief's checkpoints would otherwise train from scratch
    beside a chief that resumes, and their all-reduced gradients would mean nothing."""
    import tensorflow as tf
    if strategy.num_replicas_in_sync == 1:
        return True
    v = tf.constant([float(value), float(value) ** 2], tf.float64)

    @tf.function  # eager collectives work too, but TensorFlow warns of their overhead
    def total():
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.identity(v)), axis=None)

    total = total().numpy()
    n = strategy.num_replicas_in_sync
    # sum == n*v and sum of squares == n*v^2 hold for all replicas only when all are equal.
    return abs(total[0] - n * value) < 0.5 and abs(total[1] - n * value * value) < 0.5
