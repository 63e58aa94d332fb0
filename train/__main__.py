"""python -m train --act tanhexp: train a lightweight CIFAR-10 CNN (the seed recipe by default)."""
from __future__ import annotations

import argparse
import errno
import os
import re
import sys
from runtime.cli import Parser, config_from_args


FS_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO)


def parse(argv=None):
    p = Parser(
        prog="python -m train",
        description="Train a lightweight CIFAR-10 CNN. Defaults reproduce the seed experiment: "
                    "Adam, batch 100, 50 epochs, pixels/255, no augmentation. Rerunning the same "
                    "command after an interruption resumes after the last finished epoch.",
        epilog="Several machines: set TF_CONFIG on each (cluster.worker lists every host:port, task.index says which "
               "one this is) and run the same command on all of them; MultiWorkerMirroredStrategy then trains one "
               "model with the same global batch, learning-rate schedule and epochs as on one machine. Worker 0 "
               "(or the chief) writes the run folder, which must be on storage every worker sees to resume.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    m = p.add_argument_group("model")
    m.add_argument("--act", default="tanhexp", help="activation: relu or tanhexp")
    m.add_argument("--arch", default="seed", help="architecture (registry in train/models.py)")
    r = p.add_argument_group("recipe")
    r.add_argument("--recipe", default="seed", metavar="{seed,strong,strong-sgd}",
                   help="seed: the published recipe as it was; strong: crop+flip augmentation, batch norm (folded at "
                        "export), cosine learning rate; strong-sgd: strong with SGD (Nesterov 0.9, peak lr 0.1), "
                        "ResNet-8's recipe (train/recipes.py)")
    r.add_argument("--epochs", type=int, default=50, help="epochs over the training split")
    r.add_argument("--batch-size", type=int, default=100, help="global batch, split across replicas")
    r.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the recipe's, 1e-3 for Adam, 0.1 for strong-sgd)")
    r.add_argument("--seed", type=int, default=0, help="weights init, shuffling and the validation split")
    d = p.add_argument_group("data")
    d.add_argument("--data", default=None,
                   help="'shipped' (data/cifar10-jpeg.tar.gz, the default), 'official' (Keras download), "
                        "or a path: cifar-10-python.tar.gz, cifar-10-batches-py/, an image-folder tree "
                        "or .tar(.gz) with train/<class>/ and test/<class>/. Env: EDGECNN_DATA")
    d.add_argument("--val-size", type=int, default=5000, help="validation images carved from train (0: none)")
    d.add_argument("--limit-train", type=int, default=None, help="use only the first N training images")
    o = p.add_argument_group("output and devices")
    o.add_argument("--out", default=None, help="run folder (default runs/<arch>-<act>-s<seed>)")
    o.add_argument("--mixed-precision", action="store_true", help="mixed precision where the hardware has it: float16 on a GPU, bfloat16 on "
                        "a CPU with AVX512_BF16/AMX (1.1-1.7x faster here, same accuracy); an error elsewhere")
    o.add_argument("--cpu-replicas", type=int, default=1, metavar="N",
                   help="split the CPU into N logical devices and train with MirroredStrategy over them: no "
                        "faster, but the multi-device code path on a machine without GPUs")
    o.add_argument("--deterministic", action="store_true", help="deterministic ops (same seed, same weights)")
    o.add_argument("--verbose", type=int, default=1 if sys.stderr.isatty() else 2, choices=(0, 1, 2),
                   help="1: progress bar, 2: one line per epoch, 0: quiet")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: keep stderr readable
    from train.config import RunExists, TrainConfig
    from train.data import resolve
    from train.data.errors import DataError
    from train.distribute import read_tf_config

    cfg = config_from_args(TrainConfig, args)
    try:
        cfg.validate()  # before importing TensorFlow: bad input fails in milliseconds
        resolve(cfg.data)  # a missing or unsupported data path, too
        read_tf_config()  # and a bad or half-written TF_CONFIG
        from train.loop import train
        train(cfg)
    except (ValueError, DataError, RunExists, OSError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)  # one line, whatever the message
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume after the last finished epoch", file=sys.stderr)
        return 130
    except Exception as e:  # TensorFlow's own file errors, e.g. a full disk while checkpointing
        msg = tf_io_error(e) or peer_lost(e)
        if msg is None:
            raise
        print(f"error: {msg}", file=sys.stderr)
        return 1
    return 0


def peer_lost(e: Exception) -> str | None:
    """One line when a multi-worker run lost a peer: TensorFlow's health check aborts the
    collectives with UnavailableError (or a collective reports a cancelled/failed peer)."""
    tf = sys.modules.get("tensorflow")
    if tf is None or not isinstance(e, (tf.errors.UnavailableError, tf.errors.DeadlineExceededError)):
        return None
    return ("a worker of the cluster stopped responding; rerun every worker's command to resume after the last "
            f"finished epoch ({type(e).__name__})")


def tf_io_error(e: Exception) -> str | None:
    """One line for a TensorFlow op that failed on a file-system error (a full disk or a file
    size limit while checkpointing, a read-only folder); None for anything else, which keeps
    its traceback (a bug must stay debuggable). TensorFlow maps these errnos to several error
    classes (ResourceExhausted, OutOfRange, PermissionDenied), so the OS message decides."""
    tf = sys.modules.get("tensorflow")
    if tf is None or not isinstance(e, tf.errors.OpError):
        return None
    if not any(os.strerror(code) in e.message for code in FS_ERRNOS):
        return None
    return " ".join(re.sub(r"\{\{function_node [^}]*\}\}", "", e.message).split())


if __name__ == "__main__":
    from runtime.quietlog import native_logs_filtered
    with native_logs_filtered():  # TensorFlow's native log lines would bury a one-line error
        sys.exit(main())
