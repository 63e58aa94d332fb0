"""python -m tools.faults.kill: SIGKILL train, export, the data cache (and the study) at seeded moments,
check what is on disk, rerun, and compare with an uninterrupted run. See docs/faults-kill.md.

For each target: one uninterrupted reference run (its wall time T), then kill points: --points
moments drawn uniformly from [0, T] (seeded); one per event of the target (a write under way or
just finished, seen by polling the output folder every 2 ms); and, where strace is installed,
up to --renames moments "just before the n-th rename(2)" of a file into the output folder,
i.e. just before a write is committed (strace delivers the SIGKILL on entry to that syscall,
found by a traced census run; one of each kind of file first). At each point the command
(its whole process group) gets SIGKILL; then the output folder is checked (kill_checks), the
same command is run again to completion, checked again, and compared with the reference.
Exit code: 0 when nothing was violated, lost or different; 1 otherwise; 2 when a run failed to
start.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tools.faults.kill_targets import TARGETS, Event, Inputs, Target
from runtime.errors import one_line
from runtime.fileio import write_json
from runtime.provenance import cpu_model, git_commit, versions
from runtime.cli import Parser

SCHEMA = "edgecnn-kill/1"


class KillError(Exception):
    """A reference run failed: nothing can be compared against it."""


@dataclass
class KillConfig:
    targets: list = field(default_factory=lambda: list(TARGETS))
    points: int = 8            # random moments per target, on top of one per event
    events: bool = True
    renames: int = 12          # "before the n-th rename" points per target (needs strace)
    seed: int = 0
    work: str | None = None    # default: a temporary folder, removed afterwards
    keep: bool = False
    timeout: float = 1800.0    # seconds per command


@dataclass
class Point:
    index: int
    kind: str                  # "time", "event" or "rename"
    label: str
    at: float = 0.0            # seconds after the first command started ("time")
    event: Event | None = None
    delay: float = 0.0         # seconds after the event was seen ("event")
    command: int = 0           # which command, and before its thread's when-th rename ("rename")
    when: int = 0


def plan(target: Target, reference_s: float, cfg: KillConfig, rng: np.random.Generator,
         renames: list[dict] = ()) -> list[Point]:
    pts = [Point(i, "time", "", at=float(rng.uniform(0, reference_s))) for i in range(cfg.points)]
    for t in pts:
        t.label = f"at {t.at:.2f} s"
    for ev in target.events if cfg.events else []:
        d = float(rng.uniform(0, ev.max_delay)) if ev.max_delay else 0.0
        pts.append(Point(len(pts), "event", ev.label + (f" +{d:.2f} s" if d else ""), event=ev, delay=d))
    for r in pick_renames(renames, cfg.renames, rng):
        pts.append(Point(len(pts), "rename", f"before rename #{r['when']} of command {r['command'] + 1} "
                         f"-> {r['dest']}", command=r["command"], when=r["when"]))
    return pts


RENAME = re.compile(r'^(\d+)\s+rename(?:at2?)?\((?:[^"]*?)"([^"]+)",\s*(?:[^"]*?)"([^"]+)"')
STRACE = ["strace", "-f", "-qq", "-e", "trace=rename,renameat,renameat2"]


def rename_census(target: Target, base: Path, timeout: float) -> list[dict]:
    """Run the commands once under strace; list each rename into the output folder with its
    command, its number among its thread's renames (strace counts per thread) and its target."""
    dest, found = base / "census", []
    cmds = target.commands(dest)
    env = target.env(base / "census.tmpdir", dest)
    for i, cmd in enumerate(cmds):
        trace = base / f"census-{i}.strace"
        with open(base / "census.log", "a") as log:
            r = subprocess.run([*STRACE, "-o", str(trace), *cmd], env=env, stdout=log, stderr=subprocess.STDOUT,
                               timeout=timeout)
        if r.returncode != 0:
            raise KillError(f"{target.name}: the traced census run failed (exit {r.returncode}); see {base / 'census.log'}")
        per_thread: dict[str, int] = {}
        for line in trace.read_text().splitlines():
            m = RENAME.match(line)
            if not m:
                continue
            tid, _, new = m.groups()
            per_thread[tid] = per_thread.get(tid, 0) + 1
            if Path(new).is_relative_to(dest):
                found.append({"command": i, "tid": tid, "when": per_thread[tid],
                              "dest": str(Path(new).relative_to(dest))})
        # Only renames that no other thread's same-numbered rename could pre-empt.
        threads = {f["tid"] for f in found if f["command"] == i}
        if len(threads) > 1:
            found = [f for f in found if f["command"] != i or f["tid"] == max(
                threads, key=lambda t: sum(g["tid"] == t for g in found))]
    shutil.rmtree(dest, ignore_errors=True)
    return found


def pick_renames(renames: list[dict], n: int, rng) -> list[dict]:
    """One rename of each kind of file first (ckpt-3 and ckpt-4 are one kind), then others."""
    kinds: dict[str, list[dict]] = {}
    for r in renames:
        kinds.setdefault(f"{r['command']}:{re.sub(r'[0-9]+', 'N', r['dest'])}", []).append(r)
    first = [group[int(rng.integers(len(group)))] for group in kinds.values()]
    rest = [r for r in renames if r not in first]
    order = [first[i] for i in rng.permutation(len(first))] + [rest[i] for i in rng.permutation(len(rest))]
    return sorted(order[:n], key=renames.index)


def _kill(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)  # the whole group: a stage's own children die with it
    except ProcessLookupError:
        pass
    p.wait()


def execute(target: Target, dest: Path, tmp: Path, log: Path, point: Point | None, timeout: float) -> dict:
    """Run the target's commands in order; with a point, SIGKILL at it. Returns what happened."""
    env = target.env(tmp, dest)
    t0 = time.monotonic()
    fired = None
    with open(log, "a") as out:
        for i, cmd in enumerate(target.commands(dest)):
            print(f"$ {' '.join(cmd)}", file=out, flush=True)
            traced = point is not None and point.kind == "rename" and point.command == i
            if traced:  # SIGKILL on entry to that rename: the file is complete, not yet committed
                cmd = [*STRACE, "-o", os.devnull, "-e",
                       f"inject=rename,renameat,renameat2:signal=KILL:when={point.when}", *cmd]
            p = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            t_cmd = time.monotonic()
            while p.poll() is None:
                now = time.monotonic() - t0
                if point is not None and point.kind == "event" and fired is None and point.event.sign(dest):
                    fired = now
                due = point is not None and (now >= point.at if point.kind == "time"
                                             else fired is not None and now >= fired + point.delay)
                if due:
                    _kill(p)
                    print(f"--- SIGKILL at {now:.3f} s ({point.label})", file=out, flush=True)
                    return {"killed": True, "at_s": round(now, 3), "command": i, "rc": None}
                if time.monotonic() - t_cmd > timeout:
                    _kill(p)
                    return {"killed": False, "command": i, "rc": "timeout", "seconds": round(now, 2)}
                time.sleep(0.002 if point is not None and point.kind == "event" else 0.01)
            if traced and p.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL):
                _kill(p)  # strace re-raises its tracee's SIGKILL; the group goes with it
                now = time.monotonic() - t0
                print(f"--- SIGKILL at {now:.3f} s ({point.label})", file=out, flush=True)
                return {"killed": True, "at_s": round(now, 3), "command": i, "rc": None}
            if p.returncode != 0:
                return {"killed": False, "command": i, "rc": p.returncode,
                        "seconds": round(time.monotonic() - t0, 2)}
    return {"killed": False, "rc": 0, "seconds": round(time.monotonic() - t0, 2)}


def _leftovers(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []


def _state_summary(state: dict) -> dict:
    """The JSON-worthy part of a check's state."""
    out = {"temp": state.get("temp", [])}
    if "history" in state:
        out.update(epochs_in_history=len(state["history"]), checkpoint_epoch=state["ckpt_epoch"],
                   finished=state["finished"])
    if "listed" in state:
        out.update(listed=sorted(state["listed"]), present=sorted(state["present"]))
    if "entries" in state:
        out.update(cache_files=len(state["entries"]))
    if "runs" in state:
        out.update(runs={name: {k: v for k, v in _state_summary(st).items() if k != "temp"}
                         for name, st in state["runs"].items()})
    return out


def kill_point(target: Target, point: Point, base: Path, ref: Path, cfg: KillConfig) -> dict:
    dest, tmp, log = base / f"p{point.index:02d}", base / f"p{point.index:02d}.tmpdir", base / f"p{point.index:02d}.log"
    rec = {"point": point.index, "kind": point.kind, "label": point.label}
    k = execute(target, dest, tmp, log, point, cfg.timeout)
    rec["killed"] = k["killed"]
    if not k["killed"]:
        rec["outcome"] = "finished before the kill point" if k["rc"] == 0 else f"failed (exit {k['rc']})"
        rec["violations_at_kill"], rec["differences"] = [], [] if k["rc"] == 0 else [rec["outcome"]]
        return rec
    rec.update(at_s=k["at_s"], command=k["command"])
    problems, state = target.check(dest)
    rec["violations_at_kill"] = problems
    rec["at_kill"] = _state_summary(state)
    rec["tmpdir_left_by_kill"] = _leftovers(tmp)
    r = execute(target, dest, tmp, log, None, cfg.timeout)
    rec["rerun"] = {"rc": r["rc"], "seconds": r.get("seconds")}
    if r["rc"] != 0:
        rec.update(violations_after=[], lost=None, redone=None,
                   differences=[f"rerun failed (exit {r['rc']}); see {log}"])
        return rec
    after, after_state = target.check(dest)
    rec["violations_after"] = after
    rec["temp_after_rerun"] = after_state.get("temp", [])
    rec.update(target.compare(dest, ref, state))
    rec["outcome"] = "ok" if not (problems or after or rec["lost"] or rec["differences"]) else "FAILED"
    return rec


def run_target(name: str, inputs: Inputs, cfg: KillConfig, rng, work: Path, bar) -> dict:
    target = TARGETS[name](inputs)
    target.prepare()
    base = work / name
    base.mkdir(parents=True, exist_ok=True)
    ref = base / "ref"
    r = execute(target, ref, base / "ref.tmpdir", base / "ref.log", None, cfg.timeout)
    if r["rc"] != 0:
        raise KillError(f"{name}: the uninterrupted reference run failed (exit {r['rc']}); see {base / 'ref.log'}")
    ref_problems, _ = target.check(ref)
    traced = cfg.renames and target.trace_renames and shutil.which("strace")
    renames = rename_census(target, base, cfg.timeout) if traced else []
    points = plan(target, r["seconds"], cfg, rng, renames)
    records = []
    for pt in bar(points, len(points)):
        records.append(kill_point(target, pt, base, ref, cfg))
        if not cfg.keep:
            for suffix in ("", ".tmpdir"):
                shutil.rmtree(base / f"p{pt.index:02d}{suffix}", ignore_errors=True)
    shown = lambda s: s.replace(str(work), "WORK").replace(sys.executable, "python")  # noqa: E731
    return {"commands": [shown(shlex.join(c)) for c in target.commands(ref)], "reference_s": r["seconds"],
            "reference_violations": ref_problems, "renames_in_census": len(renames),
            "strace": bool(shutil.which("strace")), "points": records, "summary": summarize(records, ref_problems)}


def summarize(records: list[dict], ref_problems=()) -> dict:
    killed = [r for r in records if r["killed"]]
    return {
        "points": len(records), "killed": len(killed),
        "finished_before_kill": sum(r.get("outcome") == "finished before the kill point" for r in records),
        "violations_at_kill": sum(len(r["violations_at_kill"]) for r in records) + len(ref_problems),
        "violations_after_rerun": sum(len(r.get("violations_after", [])) for r in killed),
        "lost": sum(r.get("lost") or 0 for r in killed),
        "redone": sum(r.get("redone") or 0 for r in killed),
        "rerun_failed": sum(r.get("rerun", {}).get("rc") not in (0, None) for r in killed),
        "rerun_equal": sum(not r.get("differences") for r in killed),
        "temp_left_after_rerun": sum(len(r.get("temp_after_rerun", [])) for r in killed),
        "tmpdir_left_by_kill": sum(len(r.get("tmpdir_left_by_kill", [])) for r in killed),
    }


def failed(doc: dict) -> bool:
    return any(s["violations_at_kill"] or s["violations_after_rerun"] or s["lost"] or s["rerun_failed"]
               or s["rerun_equal"] < s["killed"] or any(r.get("outcome", "").startswith("failed")
                                                        for r in t["points"])
               for t in doc["targets"].values() for s in [t["summary"]])


def run_kills(cfg: KillConfig, bar=None, argv=None) -> dict:
    unknown = [t for t in cfg.targets if t not in TARGETS]
    if unknown:
        raise KillError(f"unknown target {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    bar = bar or progress(False)
    rng = np.random.default_rng(cfg.seed)
    made = cfg.work is None
    work = Path(cfg.work or tempfile.mkdtemp(prefix="edgecnn-kill-"))
    t0 = time.perf_counter()
    try:
        inputs = Inputs(work)
        doc = {"schema": SCHEMA, "command": "python -m tools.faults.kill " + " ".join(argv or []),
               "settings": {"targets": cfg.targets, "points": cfg.points, "events": cfg.events, "renames": cfg.renames,
                            "seed": cfg.seed},
               "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "versions": versions(),
                           "git_commit": git_commit()},
               "targets": {}}
        for name in cfg.targets:
            doc["targets"][name] = run_target(name, inputs, cfg, rng, work, bar)
        doc["seconds"] = round(time.perf_counter() - t0, 1)
        doc["summary"] = {k: sum(t["summary"][k] for t in doc["targets"].values())
                          for k in next(iter(doc["targets"].values()))["summary"]} if doc["targets"] else {}
        return doc
    finally:
        if made and not cfg.keep:
            shutil.rmtree(work, ignore_errors=True)


def table(doc: dict) -> str:
    cols = ("target", "points", "killed", "violations", "lost", "redone", "rerun equal", "temp left")
    rows = [cols]
    for name, t in doc["targets"].items():
        s = t["summary"]
        rows.append((name, str(s["points"]), str(s["killed"]),
                     f"{s['violations_at_kill']}+{s['violations_after_rerun']}", str(s["lost"]), str(s["redone"]),
                     f"{s['rerun_equal']}/{s['killed']}", str(s["temp_left_after_rerun"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for name, t in doc["targets"].items():
        for r in t["points"]:
            bad = r["violations_at_kill"] + r.get("violations_after", []) + r.get("differences", [])
            if bad or r.get("lost"):
                lines.append(f"FAILED {name} point {r['point']} ({r['label']}): {'; '.join(bad)} lost {r.get('lost')}")
    return "\n".join(lines)


def progress(enabled: bool):
    """tqdm over the kill points when it is installed, else one stderr line per point."""
    def wrap(points, total):
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        if not enabled or tqdm is None:
            for i, pt in enumerate(points, 1):
                if enabled:
                    print(f"[{i}/{total}] {pt.label}", file=sys.stderr, flush=True)
                yield pt
            return
        with tqdm(total=total, unit="kill", file=sys.stderr, leave=False, dynamic_ncols=True) as bar:
            for pt in points:
                bar.set_postfix_str(pt.label)
                yield pt
                bar.update()
    return wrap


def main(argv=None) -> int:
    p = Parser(prog="python -m tools.faults.kill", description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", default=",".join(TARGETS), metavar="T[,T]", help=f"of {', '.join(TARGETS)}")
    p.add_argument("--points", type=int, default=8, metavar="N", help="random kill moments per target")
    p.add_argument("--no-events", action="store_true", help="no kill points at file-system events")
    p.add_argument("--renames", type=int, default=12, metavar="N",
                   help="kill points just before a rename into the output (needs strace; 0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    p.add_argument("--work", metavar="DIR", help="work folder (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep every killed folder and log")
    p.add_argument("--json", metavar="PATH", help=f"write the {SCHEMA} record here")
    p.add_argument("--no-progress", action="store_true")
    argv = sys.argv[1:] if argv is None else argv
    a = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # the checks load checkpoints: keep stderr readable
    cfg = KillConfig(targets=[t for t in a.targets.split(",") if t], points=a.points, events=not a.no_events,
                     renames=a.renames, seed=a.seed, work=a.work, keep=a.keep)
    try:
        doc = run_kills(cfg, progress(not a.no_progress), argv)
        if a.json:
            write_json(a.json, doc)
    except (KillError, OSError) as e:
        print(f"error: {one_line(e, with_type=isinstance(e, OSError))}", file=sys.stderr)
        return 2
    print(table(doc))
    return 1 if failed(doc) else 0


if __name__ == "__main__":
    from runtime.quietlog import native_logs_filtered
    with native_logs_filtered():  # the checks load TensorFlow, whose native log lines bury the table
        sys.exit(main())
