"""Untrusted data: nothing loads pickles, Keras loads safely, archives never
write outside their target; checked statically over the source and on hostile files."""
from __future__ import annotations

import ast
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from runtime.fileio import sha256_file, write_json
from tests.conftest import png_bytes, write_pybatches
from train.data import DataError, load

REPO = Path(__file__).resolve().parents[3]
RUNTIME_CODE = ("runtime", "export", "train")  # what loads data and models
PACKAGES = (*RUNTIME_CODE, "faults")  # tools/faults/ writes hostile pickles for tests, never loads one
# The one module allowed to import pickle: it unpickles CIFAR's python batches through an
# allow-list Unpickler (train/data/pybatches.py), never through pickle.load(s).
PICKLE_OK = {Path("train/data/pybatches.py")}
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal", "_pickle"}


def sources(packages=PACKAGES):
    for pkg in packages:
        for path in sorted((REPO / pkg).rglob("*.py")):
            yield path.relative_to(REPO), ast.parse(path.read_text(), str(path))


def calls(tree, name):
    """Calls whose callee is `name` or `<anything>.name`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Attribute) and f.attr == name) or (isinstance(f, ast.Name) and f.id == name):
                yield node


def keyword(call, name):
    kw = next((k for k in call.keywords if k.arg == name), None)
    return kw.value.value if kw is not None and isinstance(kw.value, ast.Constant) else "<missing>"


def test_the_scan_sees_the_code():
    # a scan that finds nothing proves nothing: it must see the known np.load calls
    found = {str(p) for p, t in sources() for c in calls(t, "load")
             if isinstance(c.func, ast.Attribute) and getattr(c.func.value, "id", "") == "np"}
    assert {"runtime/bundle.py", "runtime/isolate.py", "export/manifest.py"} <= found, found


def test_every_np_load_refuses_pickles():
    bad = [f"{p}:{c.lineno}" for p, t in sources() for c in calls(t, "load")
           if isinstance(c.func, ast.Attribute) and getattr(c.func.value, "id", "") in ("np", "numpy")
           and keyword(c, "allow_pickle") is not False]
    assert not bad, f"np.load without allow_pickle=False: {bad}"


def test_no_module_imports_pickle_except_the_safe_unpickler():
    bad = []
    for p, t in sources(RUNTIME_CODE):
        for node in ast.walk(t):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] in UNSAFE_MODULES for n in names) and p not in PICKLE_OK:
                bad.append(f"{p}:{node.lineno}")
    assert not bad, f"pickle-like imports: {bad}"


def test_nothing_calls_pickle_load():
    # the safe unpickler subclasses pickle.Unpickler and calls its .load(); nothing anywhere
    # calls pickle.load/loads or a plain Unpickler
    bad = [f"{p}:{c.lineno}" for p, t in sources() for name in ("load", "loads", "Unpickler")
           for c in calls(t, name) if isinstance(c.func, ast.Attribute)
           and getattr(c.func.value, "id", "") in UNSAFE_MODULES]
    assert not bad, f"unpickling calls: {bad}"


def test_keras_models_load_with_safe_mode():
    found = [(p, c) for p, t in sources() for c in calls(t, "load_model")
             if isinstance(c.func, ast.Attribute)]  # keras.models.load_model, not our wrapper
    assert found, "expected keras load_model calls in export/"
    bad = [f"{p}:{c.lineno}" for p, c in found if keyword(c, "safe_mode") is not True]
    assert not bad, f"load_model without safe_mode=True: {bad}"


def test_no_archive_extraction_to_disk():
    # the readers take members in memory; extract/extractall would be where '../' bites
    bad = [f"{p}:{c.lineno}" for p, t in sources() for name in ("extractall", "extract")
           for c in calls(t, name) if keyword(c, "filter") != "data"]
    assert not bad, f"tar extraction without filter='data': {bad}"


# --- hostile archives (tests/train/test_data.py covers a symlink and a '../' member) -------

def _tar(path: Path, members):
    with tarfile.open(path, "w") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def test_absolute_path_member_is_refused_and_not_written(tmp_path, tiny):
    target = tmp_path / "outside" / "train" / "cat" / "pwned.png"
    arc = _tar(tmp_path / "abs.tar", [_file(str(target), png_bytes(tiny[0][0]))])
    with tarfile.open(arc) as tf:  # the name really is absolute inside the archive
        assert tf.getnames()[0].startswith("/")
    with pytest.raises(DataError, match="outside"):
        load(str(arc))
    assert not target.exists()


def test_nested_dotdot_member_is_refused(tmp_path, tiny):
    arc = _tar(tmp_path / "dots.tar", [_file("c/train/../../../escape/train/cat/x.png", png_bytes(tiny[0][0]))])
    with pytest.raises(DataError, match="outside"):
        load(str(arc))
    assert not (tmp_path.parent / "escape").exists()


def test_hardlink_member_is_refused(tmp_path, tiny):
    img = png_bytes(tiny[0][0])
    link = tarfile.TarInfo("c/train/dog/0001.png")
    link.type, link.linkname = tarfile.LNKTYPE, "/etc/passwd"
    arc = _tar(tmp_path / "hard.tar", [_file("c/train/cat/0000.png", img), (link, None)])
    with pytest.raises(DataError, match="link"):
        load(str(arc))


def test_pybatches_archive_never_follows_a_link(tmp_path, tiny):
    d = write_pybatches(tmp_path / "cifar-10-batches-py", tiny)
    arc = tmp_path / "cifar-10-python.tar"
    with tarfile.open(arc, "w") as tf:
        for f in sorted(d.iterdir()):
            if f.name != "test_batch":
                tf.add(f, arcname=f"cifar-10-batches-py/{f.name}")
        evil = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        evil.type, evil.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(evil)
    with pytest.raises(DataError, match="missing batch file.*test_batch"):
        load(str(arc))


# --- pickles in a bundle -------------------------------------------------------------------

class _Payload:
    """Unpickling this would create the marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _bundle(tmp_path: Path) -> Path:
    from tools.faults.mutate import tiny_model
    b = tmp_path / "bundle"
    b.mkdir()
    (b / "float32.tflite").write_bytes(tiny_model("tflite", [1, 32, 32, 3], "float32"))
    rng = np.random.default_rng(0)
    np.savez(b / "test.npz", x=rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), y=np.arange(8) % 10)
    np.savez(b / "reference.npz", probs=np.full((8, 10), 0.1, np.float32))
    write_json(b / "manifest.json", {
        "schema": "edge-bundle/1", "classes": [str(i) for i in range(10)],
        "input": {"shape": [32, 32, 3], "layout": "NHWC", "normalization": {"scale": 1 / 255, "offset": 0.0}},
        "test_split": {"file": "test.npz", "sha256": sha256_file(b / "test.npz")},
        "reference": {"file": "reference.npz", "sha256": sha256_file(b / "reference.npz"), "key": "probs"},
        "artifacts": [{"file": "float32.tflite", "format": "tflite", "mode": "float32",
                       "sha256": sha256_file(b / "float32.tflite")}]})
    return b


def _evil_npz(path: Path, marker: Path, key: str) -> None:
    arr = np.empty(1, dtype=object)
    arr[0] = _Payload(marker)
    np.savez(path, **{key: arr})
    with np.load(path, allow_pickle=False) as z:  # the file really holds a pickle
        with pytest.raises(ValueError, match="allow_pickle"):
            z[key]


def _bench(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "runtime.bench", *map(str, args), "--runs", "2",
                           "--warmup", "0", "--no-progress", "--in-process"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def _one_error_line(r, *words):
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, (r.returncode, r.stderr, r.stdout)
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert all(w in lines[0] for w in words), lines[0]


def test_bundle_baseline_runs(tmp_path):
    # the hostile variants below differ from this only in the pickled array
    assert _bench("--bundle", _bundle(tmp_path)).returncode == 0


@pytest.mark.parametrize("which,key", [("test_split", "x"), ("reference", "probs")])
def test_pickled_npz_in_a_bundle_is_refused(tmp_path, which, key):
    b = _bundle(tmp_path)
    marker = tmp_path / "code-ran"
    m = json.loads((b / "manifest.json").read_text())
    name = m[which]["file"]
    _evil_npz(b / name, marker, key)
    m[which]["sha256"] = sha256_file(b / name)  # a hostile bundle brings matching hashes
    write_json(b / "manifest.json", m)
    _one_error_line(_bench("--bundle", b), name, "allow_pickle")
    assert not marker.exists()


def test_pickled_npz_as_bare_data_is_refused(tmp_path):
    b = _bundle(tmp_path)
    marker = tmp_path / "code-ran"
    _evil_npz(tmp_path / "evil.npz", marker, "x")
    _one_error_line(_bench("--model", b / "float32.tflite", "--data", tmp_path / "evil.npz"), "evil.npz")
    assert not marker.exists()
