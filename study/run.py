"""study(cfg): train -> export -> bench for every cell, then the report.

Each stage runs as its own `python -m ...` process, the very command a user would type: the
study adds no second code path to trust, a crash in one stage cannot poison the next (TF's
global state, a native crash in a runtime), and every stage is already resumable and atomic,
so the study resumes by asking each stage whether its output is complete and skipping it.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from export.formats import FORMATS, file_name
from runtime.fileio import sha256_file, write_json
from study.config import RANGES, StudyConfig


class StudyError(Exception):
    """A stage failed; the message names the stage and its command."""


@dataclass(frozen=True)
class Cell:
    arch: str
    recipe: str
    act: str
    seed: int

    @property
    def name(self) -> str:
        # The train CLI's own default folder name, so a study adopts runs trained by hand.
        recipe = "" if self.recipe == "seed" else f"{self.recipe}-"
        return f"{self.arch}-{recipe}{self.act}-s{self.seed}"


def cells(cfg: StudyConfig) -> list[Cell]:
    return [Cell(arch, recipe, act, seed) for arch in cfg.archs for recipe in cfg.recipes_for(arch)
            for seed in cfg.seeds_for(arch) for act in cfg.acts]


def runs_dir(cfg: StudyConfig) -> Path:
    # Quick runs must never land beside (or be mistaken for) real 50-epoch runs.
    if cfg.runs_dir:
        return Path(cfg.runs_dir)
    return Path(cfg.out) / "runs" if cfg.quick else Path("runs")


def wanted_modes(cfg: StudyConfig, fmt: str) -> list[str]:
    return [m for m in FORMATS[fmt] if cfg.modes is None or m in cfg.modes]


# --- what is already done ---------------------------------------------------------------

def trained(cfg: StudyConfig, cell: Cell, run: Path) -> bool:
    """Finished, and finished as this study would have trained it: a run folder that holds a
    different run (other epochs, data or split) must stop the study, not join its statistics."""
    if not ((run / "metrics.json").is_file() and (run / "model.keras").is_file()):
        return False
    try:
        had = json.loads((run / "config.json").read_text())
    except (OSError, ValueError):
        raise StudyError(f"{run}: finished but its config.json is unreadable; move it away") from None
    want = {"act": cell.act, "arch": cell.arch, "recipe": cell.recipe, "seed": cell.seed,
            "epochs": cfg.epochs_for(cell.arch), "val_size": cfg.val_size, "limit_train": cfg.limit_train,
            "data": cfg.data}
    # Keys a run folder predates take the trainer's defaults, as TrainConfig.from_json reads them.
    from train.config import TrainConfig
    defaults = TrainConfig().to_dict()
    diff = {k: (had.get(k, defaults[k]), v) for k, v in want.items() if had.get(k, defaults[k]) != v}
    # The recipe's settings, where the run recorded them (older runs did not): a recipe whose
    # definition changed since the run was trained is a different recipe.
    from train.recipes import RETIRED, Recipe, recipe_of
    now = dataclasses.asdict(recipe_of(TrainConfig(recipe=cell.recipe)))
    # Settings added to Recipe since a run was trained take their defaults (what it ran with);
    # settings retired since then count only if they were on.
    then = {k: v for k, v in had.get("recipe_settings", {}).items() if not (k in RETIRED and v == RETIRED[k])}
    if "recipe_settings" in had and {**dataclasses.asdict(Recipe()), **then} != now:
        diff["recipe_settings"] = (had["recipe_settings"], now)
    if diff:
        raise StudyError(f"{run} holds a different run (run vs study: {diff}); choose another --runs-dir")
    return True


def missing_modes(run: Path, fmt: str, modes: list[str], calibration: dict | None = None) -> list[str]:
    """Modes whose artifact is not in the manifest, or whose file is absent or altered, or which
    was calibrated otherwise than `calibration` ({mode: fields its entry must record}, from
    StudyConfig.calibration_for) asks: that one is re-exported."""
    try:
        manifest = json.loads((run / "export" / "manifest.json").read_text())
    except (OSError, ValueError):
        return list(modes)
    ok = {a["mode"] for a in manifest.get("artifacts", [])
          if a["format"] == fmt
          and (run / "export" / a["file"]).is_file()
          and sha256_file(run / "export" / a["file"]) == a["sha256"]
          and _calibrated_as(a, (calibration or {}).get(a["mode"]))}
    return [m for m in modes if m not in ok]


def _calibrated_as(entry: dict, want: dict | None) -> bool:
    # Entries from before the percentile options record no ranges: they are min/max. One that
    # records no count does not say what it was calibrated on, so it is made again.
    cal = entry.get("calibration")
    had = {"ranges": "min/max", **(cal if isinstance(cal, dict) else {})}
    return all(had.get(k) == v for k, v in (want or {}).items())


def bench_path(cfg: StudyConfig, cell: Cell, run: Path) -> Path:
    # Named after the manifest's hash: re-exporting makes the old bench stale by name.
    digest = sha256_file(run / "export" / "manifest.json")[:12]
    return Path(cfg.out) / "bench" / f"{cell.name}-{digest}.json"


# --- the stages ------------------------------------------------------------------------

def _run(stage: str, cmd: list[str], log, ok=(0,)) -> None:
    print(f"  $ python {' '.join(cmd[1:])}", file=log, flush=True)
    proc = subprocess.run(cmd)
    if proc.returncode == 1 and 1 in ok:
        print(f"  warning: {stage}: some models failed; their rows in the bench JSON say why", file=log)
    elif proc.returncode not in ok:
        raise StudyError(f"{stage} failed (exit {proc.returncode}): python {' '.join(cmd[1:])}")


def train_cmd(cfg: StudyConfig, cell: Cell, run: Path) -> list[str]:
    cmd = [sys.executable, "-m", "train", "--act", cell.act, "--arch", cell.arch, "--recipe", cell.recipe,
           "--epochs", str(cfg.epochs_for(cell.arch)), "--seed", str(cell.seed), "--out", str(run),
           "--val-size", str(cfg.val_size), "--verbose", "2"]
    if cfg.limit_train:
        cmd += ["--limit-train", str(cfg.limit_train)]
    if cfg.data:
        cmd += ["--data", cfg.data]
    if cfg.deterministic:
        cmd += ["--deterministic"]
    if cfg.mixed_precision:
        cmd += ["--mixed-precision"]
    return cmd


def export_cmd(cfg: StudyConfig, cell: Cell, run: Path, fmt: str, modes: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "export", "--format", fmt, "--quant", *modes, "--run", str(run),
           "--calib-size", str(cfg.calib_size_for(cell.arch)), "--qat-epochs", str(cfg.qat_epochs)]
    pct = cfg.calib_percentile_for(cell.arch, fmt)
    if pct is not None:  # str, not :g, which rounds to 6 digits: the exporter gets what was asked
        cmd += [RANGES[fmt].flag, str(pct)]
    return cmd


def bench_cmd(cfg: StudyConfig, run: Path, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "runtime.bench", "--bundle", str(run / "export"), "--threads", str(cfg.threads),
           "--runs", str(cfg.bench_runs), "--json", str(out), "--no-progress"]
    if cfg.bench_limit:
        cmd += ["--limit", str(cfg.bench_limit)]
    return cmd


def preflight(cfg: StudyConfig) -> None:
    """What would otherwise fail minutes in, inside a child command, checked now and said once:
    the data path, the folders the study writes to. Nothing is written before this passes."""
    from runtime.fileio import check_writable

    if cfg.data and cfg.data not in ("shipped", "official") and not Path(cfg.data).exists():
        raise ValueError(f"--data: no such file or folder: {cfg.data}")
    for what, folder in (("--out", Path(cfg.out)), ("--runs-dir", runs_dir(cfg))):
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{what}: {folder} is a file, not a folder")
        try:
            check_writable(folder / "config.json")
        except OSError as e:
            raise ValueError(f"{what}: cannot write into {folder}: {e.strerror or e}") from None


def study(cfg: StudyConfig, log=sys.stderr) -> dict:
    """Run (or resume) every cell, then write study.json and report.md into cfg.out."""
    from study.collect import collect
    from study.report import write_report

    cfg.validate()
    preflight(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "study.json", "report.md", "curves.png", "precision.png", "latency.png"):
        for stale in out.glob(f".{name}.*.tmp"):  # a killed study's half-written files (atomic_path's names)
            stale.unlink(missing_ok=True)
    write_json(out / "config.json", cfg.to_dict())
    todo = cells(cfg)
    t0 = time.perf_counter()
    for i, cell in enumerate(todo, 1):
        run = runs_dir(cfg) / cell.name
        print(f"[{i}/{len(todo)}] {cell.name}", file=log, flush=True)
        if trained(cfg, cell, run):
            print("  train: done", file=log)
        else:
            _run(f"training {cell.name}", train_cmd(cfg, cell, run), log)
        for fmt in cfg.formats:
            modes = wanted_modes(cfg, fmt)
            missing = missing_modes(run, fmt, modes, {m: cfg.calibration_for(cell.arch, fmt, m) for m in modes})
            if missing:
                _run(f"export {fmt} of {cell.name}", export_cmd(cfg, cell, run, fmt, missing), log)
            else:
                print(f"  export {fmt}: done", file=log)
        bench = bench_path(cfg, cell, run)
        if bench.is_file():
            print("  bench: done", file=log)
        else:
            _run(f"bench of {cell.name}", bench_cmd(cfg, run, bench), log, ok=(0, 1))
    print(f"all {len(todo)} cells ready after {time.perf_counter() - t0:.0f} s; writing the report", file=log)
    results = collect(cfg, [(c, runs_dir(cfg) / c.name, bench_path(cfg, c, runs_dir(cfg) / c.name)) for c in todo])
    write_json(out / "study.json", results)
    write_report(results, out)
    return results
