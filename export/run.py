"""The source of an export: a training run folder, its model, its data, and the Job handed to
every converter.

A run folder is what `python -m train` writes: model.keras, config.json (TrainConfig plus the
data source) and, once finished, metrics.json. Everything that can be checked without
TensorFlow is checked first, so a wrong path or a damaged file fails in milliseconds.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from export.errors import BadInput, one_line
from export.loader import check_file
from runtime.backends import NORMALIZATION, normalize
from runtime.fileio import sha256_file
from runtime.imagefolder import RESIZE, resize_images

# The pixels the models were trained on: float = uint8 * SCALE + OFFSET (train/loop.py: / 255).
# Defined in runtime.backends, so that Keras, the calibration and every backend agree.
SCALE, OFFSET = NORMALIZATION


@dataclass
class Run:
    dir: Path
    config: dict          # the run's config.json (TrainConfig fields + data_source)
    model_path: Path
    model_sha256: str
    metrics: dict | None  # metrics.json, None for an unfinished run
    brought: bool = False  # a model file people bring (--model), not a run folder


def open_model_file(model: str | os.PathLike, data: str | None) -> Run:
    """A model people bring, as a Run: its data is `data` (any python -m train source), split as
    python -m train splits it with no validation images (calibration and QAT take the training
    split, parity the test split)."""
    path = Path(model)
    kind = check_file(path)
    digest = sha256_tree(path) if kind == "savedmodel" else sha256_file(path)
    return Run(path.parent, {"data": data, "val_size": 0, "seed": 0, "model_file": str(path)}, path, digest,
               None, brought=True)


def sha256_tree(folder: Path) -> str:
    """One digest over a folder's files (a SavedModel), by relative path and content."""
    import hashlib
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode() + b"\0" + sha256_file(f).encode())
    return h.hexdigest()


def newest_run(root: str | os.PathLike = "runs") -> Path:
    """The run folder under `root` whose metrics.json (written last by train) is newest."""
    finished = [p.parent for p in Path(root).glob("*/metrics.json") if (p.parent / "model.keras").is_file()]
    if not finished:
        raise BadInput(f"no finished run under {root}/ (a folder with metrics.json and model.keras); "
                       "pass --run RUN_DIR")
    return max(finished, key=lambda d: (d / "metrics.json").stat().st_mtime)


def open_run(run: str | os.PathLike | None, root: str | os.PathLike = "runs") -> Run:
    d = Path(run) if run else newest_run(root)
    if not d.is_dir():
        raise BadInput(f"run folder not found: {d}")
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        raise BadInput(f"{d} has no config.json; is it a run folder from `python -m train`?")
    try:
        config = json.loads(cfg_path.read_text())
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise BadInput(f"{cfg_path}: unreadable ({one_line(e)})") from None
    for key in ("arch", "act", "seed", "val_size"):
        if key not in config:
            raise BadInput(f"{cfg_path}: missing {key!r}")
    model_path = d / "model.keras"
    check_file(model_path)
    metrics = None
    if (d / "metrics.json").is_file():
        try:
            metrics = json.loads((d / "metrics.json").read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            metrics = None  # informative only; the export measures accuracy itself
    return Run(d, config, model_path, sha256_file(model_path), metrics)


def load_model(path: Path):
    """The one loader for run folders and models people bring (export/loader.py)."""
    from export.loader import load_model as load
    return load(path)


def load_splits(run: Run, size: tuple[int, int] | None = None):
    """The run's own data, split exactly as training split it (same spec, val_size, seed, limit).
    size: the model's input (H, W), for an image folder whose images differ in size."""
    from train.data import DataError, load
    c = run.config
    try:
        s = load(c.get("data"), int(c["val_size"]), int(c["seed"]), size=size)
    except DataError as e:
        raise BadInput(f"data of {run.dir}: {one_line(e)}") from None
    if c.get("limit_train"):
        s.x_train, s.y_train = s.x_train[:c["limit_train"]], s.y_train[:c["limit_train"]]
    return s


def fit_images(splits, model) -> dict | None:
    """Resize the splits' images to the model's input size, if it differs; what was done, for the
    manifest (None: nothing). A model with dynamic dims takes the images as they are. An image
    folder of mixed sizes was already resized to the model's size as it was read (load_splits)."""
    shape = tuple(model.input_shape[1:])
    if len(shape) != 3:
        raise BadInput(f"model input {list(model.input_shape)} is not an image batch (N, H, W, C); "
                       "single-input NHWC image classifiers are supported")
    have, (h, w, c) = splits.x_test.shape[1:], shape
    if c is not None and c != have[2]:
        raise BadInput(f"model takes {c} channels; the data has {have[2]}")
    if splits.source.get("resized"):
        return splits.source["resized"]
    if None in (h, w) or (h, w) == have[:2]:
        return None
    splits.x_train, splits.x_val, splits.x_test = (resize_images(x, h, w)
                                                   for x in (splits.x_train, splits.x_val, splits.x_test))
    return {"from": list(have[:2]), "to": [h, w], "method": RESIZE}


def input_size(model) -> tuple[int, int] | None:
    """(H, W) of a Keras image model's input, None where dynamic: what mixed-size images become."""
    shape = tuple(model.input_shape[1:])
    return tuple(shape[:2]) if len(shape) == 3 and None not in shape[:2] else None


def calibration_sample(x_train: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A seeded sample of the training split: never val or test, which must stay unseen."""
    idx = np.random.default_rng(seed).choice(len(x_train), size=min(n, len(x_train)), replace=False)
    return x_train[np.sort(idx)]


def io_description(backend) -> dict:
    """The manifest's input/output entries, read back through the device's backend
    (runtime.backends): shape, dtype, layout and quantization exactly as a device sees them."""
    def tensor(spec) -> dict:
        quant = {"scale": spec.scale, "zero_point": spec.zero_point} if spec.scale else None
        return {"name": spec.name, "shape": list(spec.shape), "dtype": np.dtype(spec.dtype).name,
                "quantization": quant}
    inp = tensor(backend.input)
    return {"input": {"name": inp["name"], "shape": inp["shape"], "layout": backend.layout,
                      **{k: inp[k] for k in ("dtype", "quantization")}},
            "output": tensor(backend.output)}


def to_float(images: np.ndarray, normalization=NORMALIZATION) -> np.ndarray:
    return normalize(images, normalization)


@dataclass
class Job:
    """Everything a converter may use. Converters write one file and return manifest extras."""

    cfg: object              # ExportConfig
    run: Run
    model: object            # the trained float Keras model, as loaded
    splits: object           # train.data.Splits
    workdir: Path            # scratch outside the bundle for intermediates (removed afterwards)
    cache: dict = field(default_factory=dict)
    normalization: tuple = NORMALIZATION  # uint8 pixel -> model input: (scale, offset), numbers or per channel
    outputs: str = "probabilities"  # what the model's output holds (runtime.backends.OUTPUTS)

    def memo(self, key, make):
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

    def lowering(self, mode: str, fmt: str | None = None) -> str | None:
        from export.lowering import choose, has_tanhexp
        return choose(mode, fmt) if has_tanhexp(self.model) else None

    def lowered(self, mode: str, fmt: str | None = None):
        """The model as exported for `mode` (and `fmt`): TanhExp layers replaced by the chosen lowering."""
        from export.lowering import choose, lowered_copy
        name = choose(mode, fmt)
        params = {k: v["params"] for k, v in self.lowering_fit(mode, fmt).items()}
        return self.memo(("lowered", name), lambda: lowered_copy(self.model, name, params=params))

    def lowering_fit(self, mode: str, fmt: str | None = None) -> dict:
        """A fitted lowering's per-layer constants (export.lowering.fit_params), fitted once on the
        calibration sample (training split); {} for a lowering with fixed constants."""
        from export.lowering import LOWERINGS, choose, fit_params
        name = choose(mode, fmt)
        if LOWERINGS[name].fit is None:  # fixed constants: no calibration images needed
            return {}
        return self.memo(("fit", name), lambda: fit_params(self.model, name, self.calib()))

    def calib_uint8(self) -> np.ndarray:
        return self.memo("calib", lambda: calibration_sample(self.splits.x_train, self.cfg.calib_size,
                                                             self.cfg.calib_seed))

    def calib(self) -> np.ndarray:
        return to_float(self.calib_uint8(), self.normalization)

    def calibration_info(self) -> dict:
        return {"split": "train", "count": int(len(self.calib_uint8())), "seed": self.cfg.calib_seed}
