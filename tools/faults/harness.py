"""Run one bad-input case and judge it: the machinery behind tools/faults/badinput.py's table.

A case runs its CLI in a child process, in a sandbox folder of its own (the working
directory, TMPDIR and every path the case names), after its setup has planted the bad
condition and the user's "earlier results". Judged (`judge`):

- exit code non-zero (a signal is not an exit code);
- stderr: no traceback, exactly one line starting with `error:`, it is the last line, it
  matches the case's `says` (it names the problem), and every other line is one of the
  CLI's own progress lines (PROGRESS: e.g. train's "decoding ... data" before it reads a
  broken dataset). `strict` records whether stderr was that one line and nothing else;
- the sandbox afterwards: every file that was there is byte-identical, nothing was removed,
  and nothing new is left behind (no temporary files, no half-written results) except
  what the case declares as resumable state (`allow_new`).

Conditions that need privileges are made the least fragile way available, with fallbacks:
read-only folder: a read-only bind mount (root), else chmod a-w (non-root); full disk: a
small tmpfs filled to the last few KiB, else RLIMIT_FSIZE for the child (Python ignores
SIGXFSZ, so writes fail with EFBIG); unreadable file: chmod 000, with the child's
CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH dropped (setpriv) when we run as root.
"""
from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]

# Lines a CLI may print before its error line: its own progress, never library noise.
PROGRESS = [re.compile(p) for p in (
    r"^decoding \w+ data from .* \(once; cached afterwards\)$",  # train/data/cache.py
    r"^data: \w+ ",                                           # Splits.describe()
    r"^training \S+ on ", r"^resuming ",                      # train/loop.py
    r"^export \w+ .* -> ", r"^keras float model: test accuracy",  # export/api.py
    r"^keras float val accuracy: ",                           # experiments/lowering_bench.py
    r"^warning: ", r"^  warning: ",                           # our own warnings
    r"^\S+: test accuracy \d", r"^\S+: already trained ",     # train/loop.py, end of a run
    r"^\[\d+/\d+\] \S+$", r"^  \$ python -m ", r"^  (train|export \w+|bench): done$",  # study/run.py
)]
# Files a library writes for itself, not a CLI's output: `import onnxruntime` (1.32) keeps its
# telemetry session id in $TMPDIR/.ses (51 bytes), created once and reused by every later import.
NOT_OURS = {"tmp/.ses"}
TEMP_NAMES = ("*.tmp", ".*.tmp", "*.partial*", ".write-test.*", "edgecnn-export-*", "edge-bench-*",
              "*_temp", "*tempstate*", ".report-*")


class Skip(Exception):
    """The condition cannot be made on this machine (the reason is reported)."""


@dataclass
class Case:
    name: str
    cli: str                                    # module: train, export, runtime.bench, ...
    argv: list                                  # "{d}" is the case's sandbox, "{fx}" the shared fixtures
    says: str                                   # regex the error line must match
    setup: Callable | None = None               # setup(ctx): plant the bad condition
    tf: bool = False                            # imports TensorFlow or needs a TF-built fixture
    env: dict = field(default_factory=dict)
    allow_new: tuple = ()                       # globs (relative to the sandbox) a failure may leave
    what: str = ""                              # the bad input, in words (for the table)


@dataclass
class Ctx:
    d: Path                                     # the case's sandbox
    fx: "Fixtures"
    prefix: list = field(default_factory=list)  # e.g. setpriv ... for unreadable files as root
    fsize: int | None = None                    # RLIMIT_FSIZE fallback for a full disk
    mounts: list = field(default_factory=list)
    condition: list = field(default_factory=list)  # how privileged conditions were made

    def p(self, rel: str) -> Path:
        return self.d / rel

    def copy(self, src: Path, rel: str) -> Path:
        dst = self.p(rel)
        dst.parent.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copytree(src, dst) if src.is_dir() else shutil.copy2(src, dst))

    # -- privileged conditions ------------------------------------------------------------
    def readonly(self, rel: str) -> Path:
        """Make the (populated) folder read-only for the CLI."""
        path = self.p(rel)
        if os.geteuid() != 0:
            _chmod_tree(path, remove=0o222)
            self.condition.append("chmod a-w")
            return path
        if _mount(["--bind", path, path]) and _mount(["-o", "remount,bind,ro", path]):
            self.mounts.append(path)
            self.condition.append("read-only bind mount")
            return path
        _umount(path)
        _chmod_tree(path, remove=0o222)
        self.no_dac()
        self.condition.append("chmod a-w, CAP_DAC_OVERRIDE dropped")
        return path

    def small_fs(self, rel: str, size_kib: int = 1024) -> Path:
        """An empty folder on a file system of its own (fill it with `fill` after populating)."""
        path = self.p(rel)
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0 and _mount(["-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs", path]):
            self.mounts.append(path)
            self.condition.append(f"tmpfs {size_kib} KiB")
        return path

    def fill(self, rel: str, leave_kib: int = 4) -> None:
        """Fill the small file system at rel up to `leave_kib` free; without one, limit the
        size of every file the child writes instead (writes then fail with EFBIG, "File too
        large", rather than ENOSPC)."""
        path = self.p(rel)
        if path not in self.mounts:  # not 0: tempfile probes its folders with a few bytes
            self.fsize = max(leave_kib, 1) * 1024
            self.condition.append(f"RLIMIT_FSIZE {leave_kib} KiB")
            return
        filler = path / "filler.bin"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for chunk in (1 << 16, 1 << 12, 1):
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, bytes(chunk))
        finally:
            os.close(fd)
        st = os.statvfs(path)
        assert st.f_bavail * st.f_frsize < 4096, "could not fill the tmpfs"
        os.truncate(filler, max(0, filler.stat().st_size - leave_kib * 1024))

    def unreadable(self, rel: str) -> Path:
        path = self.p(rel)
        os.chmod(path, 0)
        if os.geteuid() == 0:
            self.no_dac()
            self.condition.append("chmod 000, CAP_DAC_OVERRIDE dropped")
        else:
            self.condition.append("chmod 000")
        return path

    def no_dac(self) -> None:
        """As root, drop the capabilities that let root ignore file permissions."""
        if os.geteuid() != 0 or self.prefix:
            return
        if shutil.which("setpriv"):
            self.prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
        elif shutil.which("capsh"):
            self.prefix = ["capsh", "--drop=cap_dac_override,cap_dac_read_search", "--", "-c",
                           'exec "$0" "$@"']
        else:
            raise Skip("running as root and neither setpriv nor capsh can drop CAP_DAC_OVERRIDE")

    def cleanup(self) -> None:
        for m in reversed(self.mounts):
            _umount(m)
        self.mounts.clear()
        for root, dirs, _ in os.walk(self.d):  # chmod'ed leftovers must not stop rmtree
            for name in dirs:
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(root, name), 0o755)
        shutil.rmtree(self.d, ignore_errors=True)


def _mount(args) -> bool:
    if os.environ.get("FAULTS_NO_MOUNT"):  # exercise the fallbacks where mounting would work
        return False
    r = subprocess.run(["mount", *map(str, args)], capture_output=True)
    return r.returncode == 0


def _umount(path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True).returncode:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _chmod_tree(path: Path, remove: int) -> None:
    for p in [path, *path.rglob("*")]:
        os.chmod(p, p.stat().st_mode & ~remove)


class Fixtures:
    """Shared valid inputs, built once per matrix run under `root` and never written to by a
    case (their hash is checked at the end: `digest`)."""

    def __init__(self, root: Path):
        self.root = root
        self._done: set = set()

    def get(self, name: str) -> Path:
        from tools.faults import fixtures as F
        path = self.root / name
        if name in self._done or path.exists():
            self._done.add(name)
            return path
        makers = {
            "data": lambda: F.imagefolder(path),
            "run": lambda: F.stub_run(path, self.get("data")),
            "bundle": lambda: F.stub_bundle(path),
            "result.json": lambda: F.bench_result(path),
            "real-run": lambda: F.build_in_child("real-run", path, self.get("data")),
            "real-bundle": lambda: F.build_in_child("real-bundle", path),
        }
        makers[name]()
        self._done.add(name)
        return path

    def digest(self) -> str:
        return tree_digest(self.root, exclude=("cache", "mpl"))


def tree_digest(root: Path, exclude=()) -> str:
    h = hashlib.sha256()
    for rel, v in sorted(snapshot(root).items()):
        if rel.split("/")[0] not in exclude:
            h.update(f"{rel}\0{v}\n".encode())
    return h.hexdigest()


def snapshot(root: Path) -> dict:
    """relative path -> 'dir' | sha256 of the bytes (or size and mtime where unreadable)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs:
            out[os.path.relpath(os.path.join(dirpath, name), root)] = "dir"
        for name in files:
            p = os.path.join(dirpath, name)
            try:
                with open(p, "rb") as f:
                    out[os.path.relpath(p, root)] = hashlib.sha256(f.read()).hexdigest()
            except OSError:
                st = os.lstat(p)
                out[os.path.relpath(p, root)] = f"unreadable {st.st_size} {st.st_mtime_ns}"
    return out


def judge(case: Case, rc: int, stderr: str, before: dict, after: dict) -> tuple[list, bool, str | None]:
    """(problems, strict one-line stderr, the error line)."""
    problems = []
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errs = [ln for ln in lines if ln.startswith("error:")]
    err = errs[-1] if errs else None
    if rc == 0:
        problems.append("exit code 0")
    elif rc < 0:
        problems.append(f"killed by signal {-rc}")
    if "Traceback" in stderr:
        problems.append("traceback on stderr")
    if len(errs) != 1:
        problems.append(f"{len(errs)} 'error:' lines on stderr")
    elif lines[-1] != err:
        problems.append("the error line is not the last line")
    other = [ln for ln in lines if ln not in errs and not any(p.search(ln) for p in PROGRESS)]
    if other:
        problems.append(f"{len(other)} other stderr line(s), first: {other[0][:160]!r}")
    if err is not None and not re.search(case.says, err):
        problems.append(f"error line does not match {case.says!r}")
    for rel, v in before.items():
        if rel not in after:
            problems.append(f"removed: {rel}")
        elif after[rel] != v:
            problems.append(f"changed: {rel}")
    for rel in sorted(set(after) - set(before)):
        if rel in NOT_OURS:
            continue
        temp = rel.startswith("tmp/") or any(fnmatch.fnmatch(os.path.basename(rel), t) for t in TEMP_NAMES)
        if temp or not any(fnmatch.fnmatch(rel, g) for g in case.allow_new):
            problems.append(f"left behind: {rel}")
    return problems, bool(lines) and len(lines) == 1 and lines[0] == err, err


def child_env(ctx: Ctx, extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("EDGECNN_DATA", "TF_CPP_MIN_LOG_LEVEL", "EDGECNN_NATIVE_LOGS", "PYTHONWARNINGS")}
    env.update(PYTHONPATH=str(REPO), TMPDIR=str(ctx.p("tmp")), EDGECNN_CACHE=str(ctx.fx.root / "cache"),
               MPLCONFIGDIR=str(ctx.fx.root / "mpl"), COLUMNS="120")
    env.update(extra)
    return env


def expand(argv, ctx: Ctx) -> list[str]:
    return [str(a).replace("{d}", str(ctx.d)).replace("{fx}", str(ctx.fx.root)) for a in argv]


def run_case(case: Case, fx: Fixtures, workdir: Path, timeout: float = 600) -> dict:
    """Set up, run, judge and clean up one case; returns its record."""
    ctx = Ctx(workdir / case.name, fx)
    if ctx.d.exists():
        shutil.rmtree(ctx.d)
    ctx.p("tmp").mkdir(parents=True)
    rec = {"name": case.name, "cli": case.cli, "what": case.what,
           "argv": " ".join(["python", "-m", case.cli, *map(str, case.argv)]), "tf": case.tf}
    try:
        if case.setup:
            case.setup(ctx)
        before = snapshot(ctx.d)
        fsize = ctx.fsize

        def limits():
            if fsize is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        t0 = time.perf_counter()
        proc = subprocess.run([*ctx.prefix, sys.executable, "-m", case.cli, *expand(case.argv, ctx)],
                              cwd=ctx.d, env=child_env(ctx, case.env), capture_output=True, text=True,
                              errors="replace", timeout=timeout, stdin=subprocess.DEVNULL,
                              preexec_fn=limits if fsize is not None else None)
        rec["seconds"] = round(time.perf_counter() - t0, 2)
        after = snapshot(ctx.d)
        problems, strict, err = judge(case, proc.returncode, proc.stderr, before, after)
        rec.update(exit=proc.returncode, error=err, clean=not problems, strict=strict,
                   problems=problems, condition=", ".join(ctx.condition) or None)
        if problems:
            rec["stderr_tail"] = proc.stderr.strip().splitlines()[-6:]
    except Skip as e:
        rec.update(skipped=str(e), clean=None, strict=None)
    except subprocess.TimeoutExpired:
        rec.update(clean=False, strict=False, problems=[f"timed out after {timeout:g} s"])
    finally:
        ctx.cleanup()
    return rec
