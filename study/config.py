"""The study's one config, written as config.json into the study folder."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import NamedTuple

from export.config import percentile_error, ranges_label
from study.convergence import DEFAULT_THRESHOLDS
from train.config import ACT_NAMES, ARCH_NAMES, recipe_names

FORMAT_NAMES = ("tflite", "onnx")
# Each format's modes, spelled out like train/config.py's names so that bad input fails before
# anything heavy loads; tests/study check they match export.formats.FORMATS.
MODES = {"tflite": ("float32", "float16", "dynamic", "int8", "qat"), "onnx": ("float32", "dynamic", "int8")}


class Ranges(NamedTuple):
    """One format's int8 activation-range setting: the global field, its per-arch dict, and
    python -m export's flag for it."""
    field: str
    arch_field: str
    flag: str


RANGES = {"tflite": Ranges("tflite_calib_percentile", "arch_tflite_calib_percentile", "--tflite-calib-percentile"),
          "onnx": Ranges("onnx_calib_percentile", "arch_onnx_calib_percentile", "--onnx-calib-percentile")}

# The fields python -m study has a flag for; the others are set in a --config file. Messages
# name a field as the user sets it.
FLAGS = ("acts", "archs", "recipes", "seeds", "epochs", "data", "runs_dir", "out", "formats", "modes",
         "bench_runs", "threads", "quick", "deterministic", "mixed_precision")


def name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-") if field_name in FLAGS else field_name
# What a calibrated mode's manifest entry records that the study compares, to re-export a model
# calibrated otherwise. QAT records its sample's size but no ranges: its ranges are learned in
# fine-tuning, and neither percentile option reaches it (export/tflite.py).
CALIBRATED = {"int8": ("count", "ranges"), "qat": ("count",)}

# Epochs per (arch, recipe) unless --epochs says otherwise. The seed recipe is the seed's 50;
# ResNet-8 gets what fits MLPerf Tiny's "<= 60 minutes on this 2-core CPU" budget with
# --mixed-precision (bfloat16 here): 140 epochs at ~21.5 s (ReLU) each on the idle machine.
DEFAULT_EPOCHS = {"seed": 50, "resnet8": 140}

# Quick mode: enough to run every stage end to end in seconds, on any data; figures meaningless.
QUICK = dict(epochs=1, limit_train=300, val_size=100, calib_size=50, qat_epochs=1,
             bench_runs=20, bench_limit=200, modes=("float32", "int8"))


@dataclass
class StudyConfig:
    # The defaults are the study docs/results.md reports, with the settings chosen on validation
    # (docs/decisions.md): ResNet-8 one seed of strong-sgd, its TFLite int8 at percentile 99.99
    # over 2,000 calibration images; ONNX int8 at percentile 99.99 for every architecture.
    acts: list = field(default_factory=lambda: list(ACT_NAMES[::-1]))  # tanhexp, relu
    archs: list = field(default_factory=lambda: ["seed"])
    recipes: list = field(default_factory=lambda: ["seed", "strong"])
    seeds: int = 3                      # seeds 0..N-1 per cell
    arch_seeds: dict = field(default_factory=lambda: {"resnet8": 1})
    arch_recipes: dict = field(default_factory=lambda: {"resnet8": ["strong-sgd"]})
    epochs: int | None = None           # None: DEFAULT_EPOCHS[arch]
    formats: list = field(default_factory=lambda: list(FORMAT_NAMES))
    modes: list | None = None           # None: every mode of each format
    data: str | None = None
    runs_dir: str | None = None         # None: runs/ (train's default), or OUT/runs in quick mode
    out: str = "docs/study"
    thresholds: list = field(default_factory=lambda: list(DEFAULT_THRESHOLDS))
    calib_size: int = 500
    arch_calib_size: dict = field(default_factory=lambda: {"resnet8": 2000})
    qat_epochs: int = 2
    onnx_calib_percentile: float | None = 99.99  # ONNX int8 ranges: None min/max, else this percentile
    tflite_calib_percentile: float | None = None  # TFLite int8 ranges: the same (export/tflite_ranges.py)
    arch_onnx_calib_percentile: dict = field(default_factory=dict)
    arch_tflite_calib_percentile: dict = field(default_factory=lambda: {"resnet8": 99.99})
    bench_runs: int = 300
    bench_limit: int | None = None
    threads: int = 1
    limit_train: int | None = None
    val_size: int = 5000
    quick: bool = False
    deterministic: bool = False
    mixed_precision: bool = False       # train what is still untrained with --mixed-precision

    def __post_init__(self):
        # Quick mode fills in what the user left at its default; an explicit value wins (and is
        # validated like any other: `--quick --epochs 0` is an error, not silently one epoch).
        if self.quick:
            defaults = {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
                        for f in dataclasses.fields(self)}
            for k, v in QUICK.items():
                if getattr(self, k) == defaults[k]:
                    setattr(self, k, list(v) if isinstance(v, tuple) else v)

    def validate(self) -> None:
        for key, got, allowed in (("acts", self.acts, ACT_NAMES), ("archs", self.archs, ARCH_NAMES),
                                  ("recipes", self.recipes, recipe_names()),
                                  ("formats", self.formats, FORMAT_NAMES),
                                  ("arch_seeds", list(self.arch_seeds), ARCH_NAMES),
                                  ("arch_recipes", list(self.arch_recipes), ARCH_NAMES),
                                  ("arch_recipes", [r for rs in self.arch_recipes.values() for r in rs], recipe_names()),
                                  ("arch_calib_size", list(self.arch_calib_size), ARCH_NAMES),
                                  *((r.arch_field, list(getattr(self, r.arch_field)), ARCH_NAMES)
                                    for r in RANGES.values())):
            bad = [x for x in got if x not in allowed]
            if bad or (not got and not key.startswith("arch_")):
                raise ValueError(f"{name(key)}: unknown or empty {bad or got}; choose from {', '.join(allowed)}")
        for key, lo in (("seeds", 1), ("epochs", 1), ("calib_size", 1), ("qat_epochs", 1), ("bench_runs", 1),
                        ("threads", 1), ("val_size", 0), ("limit_train", 1), ("bench_limit", 1)):
            v = getattr(self, key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise ValueError(f"{name(key)} must be an integer, got {v!r}")
            if v is not None and v < lo:
                raise ValueError(f"{name(key)} must be >= {lo}, got {v}")
        known = {m for f in self.formats for m in MODES[f]}
        bad = [m for m in (self.modes or []) if m not in known]
        if bad or self.modes == []:
            raise ValueError(f"--modes: unknown or empty {bad or self.modes}; the formats {', '.join(self.formats)} "
                             f"have {', '.join(sorted(known))}")
        for r in RANGES.values():
            for label, pct in ((r.field, getattr(self, r.field)),
                               *((f"{r.arch_field} {a}", p) for a, p in getattr(self, r.arch_field).items())):
                bad = percentile_error(pct, label)
                if bad:
                    raise ValueError(bad)
        for key in ("arch_seeds", "arch_calib_size"):
            counts = getattr(self, key)
            if any(not isinstance(n, int) or n < 1 for n in counts.values()):
                raise ValueError(f"{key} counts must be integers >= 1, got {counts}")
        if any(not 0 < t < 1 for t in self.thresholds):
            raise ValueError(f"thresholds must be in (0, 1), got {self.thresholds}")

    def seeds_for(self, arch: str) -> list[int]:
        return list(range(self.arch_seeds.get(arch, self.seeds)))

    def recipes_for(self, arch: str) -> list[str]:
        return list(self.arch_recipes.get(arch, self.recipes))

    def epochs_for(self, arch: str) -> int:
        return self.epochs or DEFAULT_EPOCHS[arch]

    def calib_size_for(self, arch: str) -> int:
        return self.arch_calib_size.get(arch, self.calib_size)

    def calib_percentile_for(self, arch: str, fmt: str) -> float | None:
        r = RANGES[fmt]
        return getattr(self, r.arch_field).get(arch, getattr(self, r.field))

    def ranges_for(self, arch: str, fmt: str) -> str:
        """What an int8 manifest entry of this arch and format records as its calibration ranges."""
        return ranges_label(self.calib_percentile_for(arch, fmt))

    def calibration_for(self, arch: str, fmt: str, mode: str) -> dict:
        """The calibration fields a (fmt, mode) manifest entry of this arch must record; {} for a
        mode without calibration."""
        # The exporter samples min(N, training images): --limit-train is how the study knows the
        # split is smaller (a custom --data with fewer than N would be re-exported every rerun).
        n = self.calib_size_for(arch)
        count = min(n, self.limit_train) if self.limit_train else n
        have = {"count": count, "ranges": self.ranges_for(arch, fmt)}
        return {k: have[k] for k in CALIBRATED.get(mode, ())}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def fields_from_file(cls, path: str) -> dict:
        """The fields a --config file sets: a JSON object of StudyConfig fields, such as the
        config.json a study writes (so `--config docs/study/config.json` reruns that study)."""
        import json
        from pathlib import Path
        try:
            d = json.loads(Path(path).read_text())
        except OSError as e:
            raise ValueError(f"--config {path}: {e.strerror or e}") from None
        except ValueError as e:
            raise ValueError(f"--config {path}: not JSON ({e})") from None
        if not isinstance(d, dict):
            raise ValueError(f"--config {path}: want a JSON object of study settings, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"--config {path}: unknown settings {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return d
