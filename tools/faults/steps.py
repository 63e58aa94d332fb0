"""Setup steps for the bad-input matrix (tools/faults/badinput.py): each returns a function of the
case context that plants one thing in the case's sandbox (a fixture copy, a file, an edit,
a read-only folder, a full disk); `steps` chains them."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from tools.faults import fixtures as F
from tools.faults.harness import REPO
from runtime.fileio import sha256_file, write_json


def steps(*fns):
    def setup(ctx):
        for fn in fns:
            fn(ctx)
    return setup


def fx(name, rel):
    """A copy of a shared fixture at rel."""
    return lambda ctx: ctx.copy(ctx.fx.get(name), rel)


def put(rel, data):
    def fn(ctx):
        p = ctx.p(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, (dict, list)):
            write_json(p, data)
        else:
            p.write_bytes(data.encode() if isinstance(data, str) else data)
    return fn


def edit_json(rel, change):
    def fn(ctx):
        d = json.loads(ctx.p(rel).read_text())
        change(d)
        write_json(ctx.p(rel), d)
    return fn


def npz(rel, **arrays):
    def fn(ctx):
        import numpy as np
        with open(ctx.p(rel), "wb") as f:
            np.savez(f, **{k: (v() if callable(v) else v) for k, v in arrays.items()})
    return fn


def rehash(bundle):
    """Make the manifest's hashes match the (edited) test and reference files again."""
    def fn(ctx):
        def change(m):
            for key in ("test_split", "reference"):
                m[key]["sha256"] = sha256_file(ctx.p(f"{bundle}/{m[key]['file']}"))
        edit_json(f"{bundle}/manifest.json", change)(ctx)
    return fn


def data(rel, **kw):
    return lambda ctx: F.imagefolder(ctx.p(rel), **kw)


def pyb(rel, **kw):
    return lambda ctx: F.pybatches(ctx.p(rel), **kw)


def truncate(rel, keep=0.5):
    def fn(ctx):
        b = ctx.p(rel).read_bytes()
        ctx.p(rel).write_bytes(b[:int(len(b) * keep)])
    return fn


def readonly(rel):
    return lambda ctx: ctx.readonly(rel)


def unreadable(rel):
    return lambda ctx: ctx.unreadable(rel)


def full(rel, leave_kib=0, then=()):
    """A small tmpfs at rel holding the earlier results `then` plants, filled to the brim."""
    def fn(ctx):
        ctx.small_fs(rel, 2048)
        for t in then:
            t(ctx)
        ctx.fill(rel, leave_kib)
    return fn


def run_data(rel, spec):
    """Point the run's config.json at other data ("{d}" is the sandbox)."""
    def fn(ctx):
        edit_json(f"{rel}/config.json", lambda c: c.update(data=spec.replace("{d}", str(ctx.d))))(ctx)
    return fn


def remove(rel):
    return lambda ctx: ctx.p(rel).unlink()


def zip_without_keras_members(rel):
    """A valid zip that is not a .keras file (no config.json, no model.weights.h5)."""
    def fn(ctx):
        import zipfile
        with zipfile.ZipFile(ctx.p(rel), "w") as z:
            z.writestr("a", "b")
    return fn


def exported(run_rel, out_rel, *modes):
    """An earlier export of the real run (the user's bundle), made with the export CLI."""
    def fn(ctx):
        env = {**os.environ, "PYTHONPATH": str(REPO), "EDGECNN_CACHE": str(ctx.fx.root / "cache"),
               "TF_CPP_MIN_LOG_LEVEL": "3"}
        r = subprocess.run([sys.executable, "-m", "export", "--format", "tflite", "--quant", *modes,
                            "--run", str(ctx.p(run_rel)), "--out", str(ctx.p(out_rel)),
                            "--calib-size", "10", "--parity-batch", "10"],
                           capture_output=True, text=True, env=env, cwd=ctx.d)
        if r.returncode:
            raise RuntimeError(f"setup export failed: {r.stderr[-1500:]}")
    return fn


def copytree(src_rel, dst_rel):
    return lambda ctx: shutil.copytree(ctx.p(src_rel), ctx.p(dst_rel))
