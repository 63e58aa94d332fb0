"""`python -m tools.faults.fuzz` / `run_fuzz(cfg)`: hostile model files against the bench and
export's checks (docs/faults-fuzz.md).

Exit codes: 0 no crash, hang, undetected corruption or dirty error; 1 some (the JSON's
`failures` lists each with its case number, to replay with --case); 2 the run could not
start; 130 interrupted.

For case i: mutator = the i-th in turn, source = a model file of the given bundles in turn,
seed = f(--seed, i); so every (mutator, source) pair is covered evenly and any one case can
be rebuilt alone with `--case i`. The mutated file is put in a copy of its bundle whose
manifest still records the original's sha256, then given to the worker three times:
`bundle` (must be refused by the sha256 check before any loader sees it), `bare` (the same
file as `--model FILE`: no hash, so it must fail cleanly or still be a working model) and
`export` (export's own checks). A seeded sample also goes through the real CLI.

The bundle copies carry a small test split (SMALL_SPLIT images, its manifest entry and that
of the reference rewritten to match); the model entries are left exactly as exported.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import argparse
import sys

from tools.faults import clicheck
from tools.faults.classify import FAILURES, OUTCOMES, STEPS, classify
from tools.faults.mutate import MUTATORS, mutate
from tools.faults.pool import Worker
from runtime.errors import one_line
from runtime.fileio import sha256_file, write_json
from runtime.progress import progress
from runtime.provenance import provenance
from runtime.cli import Parser

SCHEMA = "edge-fuzz/1"
SMALL_SPLIT = 64
FORMATS = ("tflite", "onnx")


class FuzzError(Exception):
    """The fuzz run cannot start (bad bundle, unknown mutator): one line, exit 2."""


@dataclass(frozen=True)
class Source:
    bundle: str
    file: str
    format: str
    mode: str


@dataclass(frozen=True)
class Case:
    index: int
    mutator: str
    source: Source
    seed: int


@dataclass
class FuzzConfig:
    bundles: list[str]
    cases: int = 1000
    seed: int = 0
    timeout: float = 60.0       # per step; a hang is no answer within it
    cli: int = 0                # how many cases also go through `python -m runtime.bench`
    mutators: list[str] | None = None
    only_case: int | None = None  # replay one case
    workdir: str | None = None
    keep: bool = False          # keep each case's files (to inspect a failure)


def sources_of(bundle: str) -> list[Source]:
    d = Path(bundle)
    try:
        m = json.loads((d / "manifest.json").read_text())
        arts = m["artifacts"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise FuzzError(f"{d}: not a bundle with a readable manifest.json ({e})") from None
    out = [Source(str(d), a["file"], a["format"], a["mode"]) for a in arts
           if isinstance(a, dict) and a.get("format") in FORMATS and (d / str(a.get("file"))).is_file()]
    if not out:
        raise FuzzError(f"{d}: no .tflite/.onnx artifacts to mutate")
    return out


def case_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def plan(sources: list[Source], n: int, seed: int, mutators: list[str] | None = None) -> list[Case]:
    names = list(mutators or sorted(MUTATORS))
    m, s = len(names), len(sources)
    return [Case(i, names[i % m], sources[(i // m) % s], case_seed(seed, i)) for i in range(n)]


def small_bundle(src: Path, dest: Path, n: int = SMALL_SPLIT) -> Path:
    """manifest.json (model entries untouched) + the first n test images and reference rows."""
    dest.mkdir(parents=True)
    m = json.loads((src / "manifest.json").read_text())
    with np.load(src / m["test_split"]["file"], allow_pickle=False) as z:
        np.savez(dest / "test.npz", **{k: z[k][:n] for k in z.files})
    m["test_split"] = {"file": "test.npz", "sha256": sha256_file(dest / "test.npz"), "count": n}
    ref = m.get("reference")
    if ref:
        with np.load(src / ref["file"], allow_pickle=False) as z:
            np.savez(dest / "reference.npz", **{k: z[k][:n] for k in z.files})
        m["reference"] = {**ref, "file": "reference.npz", "sha256": sha256_file(dest / "reference.npz")}
    write_json(dest / "manifest.json", m)
    return dest


class Tally:
    def __init__(self):
        self.counts = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))  # mutator/step/outcome
        self.failures: list[dict] = []
        self.contained: list[dict] = []  # native crashes the isolated bench turned into error rows
        self.examples = defaultdict(dict)  # mutator -> "step/outcome" -> the first such case
        self.still_loads = defaultdict(int)  # bare ok: the file is still a working model...
        self.caught = 0  # ...and the bundle step refused it before loading

    def add(self, case: Case, what: str, step: str, outcome: str, detail: str) -> str:
        self.counts[case.mutator][step][outcome] += 1
        self.examples[case.mutator].setdefault(f"{step}/{outcome}", f"{what} -> {detail}"[:300])
        if outcome in FAILURES or outcome == "contained":
            (self.contained if outcome == "contained" else self.failures).append({"case": case.index, "mutator": case.mutator, "seed": case.seed,
                                  "source": f"{case.source.bundle}/{case.source.file}", "what": what,
                                  "step": step, "outcome": outcome, "detail": detail[:300]})
        return outcome

    def totals(self) -> dict:
        by_step = {s: {o: sum(self.counts[m].get(s, {}).get(o, 0) for m in self.counts) for o in OUTCOMES}
                   for s in STEPS}
        by_step = {s: {o: v for o, v in d.items() if v} for s, d in by_step.items() if any(d.values())}
        out = {o: sum(d.get(o, 0) for d in by_step.values()) for o in OUTCOMES}
        return {"by_step": by_step, "outcomes": out}


def run_case(case: Case, work: Path, small: dict, worker: Worker, cfg: FuzzConfig, tally: Tally,
             with_cli: bool) -> None:
    src = case.source
    cdir = work / f"case{case.index}"
    shutil.copytree(small[src.bundle], cdir)
    target = cdir / src.file
    what = mutate(case.mutator, Path(src.bundle) / src.file, target, case.seed)
    requests = {
        "bundle": {"bundle": str(cdir), "file": src.file, "format": src.format, "mode": src.mode},
        "bare": {"path": str(target), "data": str(cdir / "test.npz")},
        "export": {"path": str(target), "format": src.format},
    }
    got = {}
    for step, req in requests.items():
        outcome, detail = classify(step, worker.call({"step": step, **req}, cfg.timeout))
        if step == "bare" and outcome == "crash":
            # by default the bench measures each model in a process of its own: check that
            # this native crash ends there as an error row, as runtime/isolate.py promises
            cli = clicheck.check_bare(target, cdir / "test.npz", cfg.timeout)
            if cli["outcome"] == "clean_error" and "crashed" in cli["detail"]:
                outcome, detail = "contained", f"{detail}; isolated bench: {cli['detail']}"
        got[step] = tally.add(case, what, step, outcome, detail)
    if got["bare"] == "ok":
        tally.still_loads[case.mutator] += 1
        tally.caught += got["bundle"] == "clean_error"
    if with_cli:
        tally.add(case, what, "cli_bundle", *classify("cli_bundle", clicheck.check_bundle(
            cdir, src.format, src.mode, cfg.timeout)))
        tally.add(case, what, "cli_bare", *classify("cli_bare", clicheck.check_bare(
            target, cdir / "test.npz", cfg.timeout)))
    if not cfg.keep:
        shutil.rmtree(cdir, ignore_errors=True)


def run_fuzz(cfg: FuzzConfig, progress=None) -> dict:
    """Run the cases; return the edge-fuzz/1 summary document."""
    unknown = sorted(set(cfg.mutators or ()) - set(MUTATORS))
    if unknown:
        raise FuzzError(f"unknown mutator(s) {', '.join(unknown)} (known: {', '.join(sorted(MUTATORS))})")
    if not cfg.bundles:
        raise FuzzError("give at least one bundle")
    sources = [s for b in cfg.bundles for s in sources_of(b)]
    cases = plan(sources, max(cfg.cases, (cfg.only_case or 0) + 1), cfg.seed, cfg.mutators)
    if cfg.only_case is not None:
        cases = [cases[cfg.only_case]]
    rng = np.random.default_rng(cfg.seed)
    cli_cases = {cases[int(i)].index for i in rng.choice(len(cases), min(cfg.cli, len(cases)), replace=False)}
    wrap = progress or (lambda it, total: it)
    t0 = time.monotonic()
    tally = Tally()
    tmp = tempfile.TemporaryDirectory(prefix="edge-fuzz-", dir=cfg.workdir,
                                      ignore_cleanup_errors=True) if not cfg.keep else None
    work = Path(tmp.name if tmp else tempfile.mkdtemp(prefix="edge-fuzz-", dir=cfg.workdir))
    try:
        bundles = dict.fromkeys(s.bundle for s in sources)
        small = {b: small_bundle(Path(b), work / f"bundle{i}") for i, b in enumerate(bundles)}
        with Worker(work / "worker.log") as worker:
            for case in wrap(cases, len(cases)):
                run_case(case, work, small, worker, cfg, tally, case.index in cli_cases)
            starts = worker.starts
    finally:
        if tmp:
            tmp.cleanup()
    totals = tally.totals()
    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "provenance": provenance(),
        "settings": {**asdict(cfg), "small_split": SMALL_SPLIT, "workdir": str(work) if cfg.keep else None},
        "sources": [{**asdict(s), "sha256": sha256_file(Path(s.bundle) / s.file)} for s in sources],
        "cases": len(cases),
        "cli_cases": len(cli_cases),
        "seconds": round(time.monotonic() - t0, 1),
        "worker_starts": starts,
        "totals": {**{k: totals["outcomes"][k] for k in ("crash", "hang", "undetected", "dirty", "contained")},
                   "still_loadable": sum(tally.still_loads.values()),
                   "still_loadable_caught_by_sha256": tally.caught},
        "outcomes": totals["outcomes"],
        "by_step": totals["by_step"],
        "by_mutator": {m: {s: {o: n for o, n in d.items() if n} for s, d in tally.counts[m].items()}
                       for m in sorted(tally.counts)},
        "still_loadable": dict(sorted(tally.still_loads.items())),
        "examples": {m: tally.examples[m] for m in sorted(tally.examples)},
        "failures": tally.failures,
        "contained": tally.contained,
    }


def failed(doc: dict) -> bool:
    return any(doc["totals"][k] for k in FAILURES)


def summary_table(doc: dict) -> str:
    cols = [("bundle", "clean_error", "bundle refused"), ("bare", "clean_error", "bare error"),
            ("bare", "ok", "bare ran"), ("bare", "contained", "bare contained"),
            ("export", "clean_error", "export error"),
            ("export", "ok", "export ok")]
    head = ["mutator", "cases", *(c[2] for c in cols), *FAILURES]
    rows = []
    for m, steps in doc["by_mutator"].items():
        n = sum(steps.get("bundle", {}).values())
        fails = [sum(d.get(o, 0) for d in steps.values()) for o in FAILURES]
        rows.append([m, n, *(steps.get(s, {}).get(o, 0) for s, o, _ in cols), *fails])
    rows.append(["total", sum(r[1] for r in rows), *(sum(r[i] for r in rows) for i in range(2, len(head)))])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = lambda r: "  ".join(str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(r, widths)))  # noqa: E731
    lines = [fmt(head), *(fmt(r) for r in rows)]
    t = doc["totals"]
    lines.append(f"{doc['cases']} cases ({doc['cli_cases']} also through the CLI) in {doc['seconds']} s: "
                 f"crashes {t['crash']}, hangs {t['hang']}, undetected corruptions {t['undetected']}, "
                 f"dirty errors {t['dirty']}; native crashes contained by the bench's per-model "
                 f"process {t['contained']}; {t['still_loadable']} mutated files still ran as bare "
                 f"models, {t['still_loadable_caught_by_sha256']} of them refused by the bundle's sha256 check")
    return "\n".join(lines)


# --- command line: python -m tools.faults.fuzz ---------------------------------------------------

def _positive(kind):
    def parse(s):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0: {s}")
        return v
    return parse


def _count(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {s}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m tools.faults.fuzz", description="Feed mutated .tflite/.onnx files to the "
                "bench and to export's checks; count crashes, hangs and undetected corruptions.")
    p.add_argument("--bundle", action="append", dest="bundles", required=True, metavar="DIR",
                   help="a device bundle whose models are mutated (repeatable)")
    p.add_argument("--cases", type=_positive(int), default=1000, metavar="N", help="cases to run (1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the whole run (0)")
    p.add_argument("--timeout", type=_positive(float), default=60.0, metavar="S",
                   help="seconds per step before it counts as a hang (60)")
    p.add_argument("--cli", type=_count, default=20, metavar="N",
                   help="cases also run through `python -m runtime.bench` (20)")
    p.add_argument("--mutators", type=lambda s: [x for x in s.split(",") if x], metavar="M[,M]",
                   help=f"only these ({', '.join(sorted(MUTATORS))})")
    p.add_argument("--case", type=_count, dest="only_case", metavar="I", help="replay case I only")
    p.add_argument("--keep", action="store_true", help="keep the mutated files (prints where)")
    p.add_argument("--json", metavar="PATH", help="write the edge-fuzz/1 summary here")
    p.add_argument("--no-progress", action="store_true", help="no progress display on stderr")
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    cfg = FuzzConfig(bundles=a.bundles, cases=a.cases, seed=a.seed, timeout=a.timeout, cli=a.cli,
                     mutators=a.mutators, only_case=a.only_case, keep=a.keep)
    try:
        doc = run_fuzz(cfg, progress(not a.no_progress, lambda c: c.mutator))
        if a.json:
            write_json(a.json, doc)
    except (FuzzError, OSError) as e:
        print(f"error: {one_line(e, with_type=isinstance(e, OSError))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    print(summary_table(doc))
    for f in doc["failures"][:20]:
        print(f"FAILED case {f['case']} {f['mutator']} {f['step']}: {f['outcome']}: {f['detail']}")
    if cfg.keep:
        print(f"mutated files kept in {doc['settings']['workdir']}")
    return 1 if failed(doc) else 0


if __name__ == "__main__":
    sys.exit(main())
