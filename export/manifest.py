"""The device bundle (docs/bundle.md, `edge-bundle/1`): manifest.json, test.npz, reference.npz.

Write order keeps the folder consistent at every instant: an artifact is renamed into place
only after it is converted and verified, the shared files are written before the manifest
first names them, and the manifest (rewritten atomically) is the last thing to change.
"""
from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import numpy as np

from export.errors import BadInput, one_line
from export.run import OFFSET, SCALE, Run
from runtime.fileio import atomic_path, sha256_file, write_json
from runtime.provenance import git_commit, versions

SCHEMA = "edge-bundle/1"
MANIFEST, TEST, REFERENCE, CONFIG = "manifest.json", "test.npz", "reference.npz", "config.json"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def read_existing(out: Path, run: Run) -> dict | None:
    """The folder's manifest, if any; refuse to mix exports of different models in one bundle."""
    path = out / MANIFEST
    if not path.exists():
        return None
    try:
        m = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise BadInput(f"{path}: unreadable ({one_line(e)}); remove it or choose another --out") from None
    if not isinstance(m, dict) or m.get("schema") != SCHEMA or not isinstance(m.get("artifacts"), list):
        raise BadInput(f"{path}: not an {SCHEMA} manifest; choose another --out")
    theirs = (m.get("source_run") or {}).get("model_sha256")
    if theirs != run.model_sha256:
        raise BadInput(f"{out} holds an export of a different model ({(m.get('source_run') or {}).get('dir')}, "
                       f"model sha256 {str(theirs)[:12]}); choose another --out or remove it")
    return m


def source_run(run: Run, keras_acc: float, display_dir: str, data: dict | None = None) -> dict:
    """data: what was read (train.data.Splits.source): its sha256 and how its test split was chosen."""
    c, metrics, data = run.config, run.metrics or {}, data or {}
    ds = c.get("data_source") or {}
    if run.brought:  # a model file people bring: no training record, the data as given
        return {"model_file": display_dir, "model_sha256": run.model_sha256, "data": c.get("data") or "shipped",
                "data_sha256": data.get("sha256"), "test_split": data.get("split"),
                "keras_test_accuracy": round(keras_acc, 6), "git_commit": git_commit()}
    return {"dir": display_dir, "arch": c.get("arch"), "act": c.get("act"), "seed": c.get("seed"),
            "data": c.get("data") or ds.get("path"), "data_sha256": ds.get("sha256"),
            "val_size": c.get("val_size"), "limit_train": c.get("limit_train"),
            "keras_test_accuracy": round(keras_acc, 6),
            "train_test_accuracy": metrics.get("test_accuracy"),
            "git_commit": metrics.get("git_commit") or git_commit(),
            "model_sha256": run.model_sha256}


def normalization_entry(normalization) -> dict:
    """The manifest's input.normalization: float input = uint8 pixel * scale + offset, each a
    number or a list per channel (what runtime.backends.normalize applies)."""
    scale, offset = normalization
    return {"scale": scale, "offset": offset}


def new(classes, shape, normalization=(SCALE, OFFSET)) -> dict:
    return {"schema": SCHEMA, "created": now(), "updated": now(), "source_run": {},
            "classes": list(classes),
            "input": {"shape": list(shape), "layout": "NHWC", "source_dtype": "uint8",
                      "normalization": normalization_entry(normalization)},
            "test_split": {}, "reference": {}, "artifacts": [], "exporter": {}}


def _npz_equal(path: Path, arrays: dict) -> bool:
    try:
        with np.load(path, allow_pickle=False) as z:
            return set(z.files) == set(arrays) and all(
                z[k].dtype == v.dtype and np.array_equal(z[k], v) for k, v in arrays.items())
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False


def write_npz(path: Path, **arrays) -> None:
    """Compressed, no pickle; left alone when it already holds these arrays, because a
    rewrite changes the zip timestamps and so the sha256 the manifest already records."""
    if path.exists() and _npz_equal(path, arrays):
        return
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def write_shared(out: Path, manifest: dict, x_test, y_test, ref, cfg_dict: dict) -> None:
    write_npz(out / TEST, x=np.ascontiguousarray(x_test, dtype=np.uint8), y=np.asarray(y_test, dtype=np.int64))
    write_npz(out / REFERENCE, probs=np.asarray(ref, dtype=np.float32))
    write_json(out / CONFIG, cfg_dict)
    manifest["test_split"] = {"file": TEST, "sha256": sha256_file(out / TEST), "count": int(len(y_test))}
    manifest["reference"] = {"file": REFERENCE, "sha256": sha256_file(out / REFERENCE), "key": "probs",
                             "model": "keras float (TanhExp layer as trained)"}


def upsert(manifest: dict, entry: dict) -> None:
    """Replace the entry for the same file, else append; keep a stable format/mode order."""
    arts = [a for a in manifest["artifacts"] if a.get("file") != entry["file"]] + [entry]
    from export.formats import FORMATS
    order = {(f, m): i for i, (f, m) in enumerate((f, m) for f in FORMATS for m in FORMATS[f])}
    manifest["artifacts"] = sorted(arts, key=lambda a: order.get((a.get("format"), a.get("mode")), 99))


def write(out: Path, manifest: dict) -> None:
    manifest["updated"] = now()
    manifest["exporter"] = {"git_commit": git_commit(), "versions": versions()}
    write_json(out / MANIFEST, manifest)
