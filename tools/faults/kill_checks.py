"""What must hold on disk at any instant, killed or not: the checks behind tools/faults/kill.py.

Each `check_*` looks at one kind of output folder and returns (problems, state): problems are
violations of the write-then-rename contract (a file that a record lists but that is not
complete, a final name holding a partial file, an unreadable record), state is what was
there (epochs in history.csv, the checkpointed epoch, the manifest's entries, ...) so that
the rerun can be checked for keeping it. Temporary names are allowed (a kill leaves them)
and only counted. TensorFlow, LiteRT and onnxruntime are imported only by the checks that
need them, so the cache checks stay cheap.
"""
from __future__ import annotations

import csv
import fnmatch
import json
import re
import zipfile
from pathlib import Path

import numpy as np

from runtime.fileio import sha256_file

# Names a writer uses while a file is incomplete: runtime.fileio.atomic_path (.NAME.XXXX.tmp),
# train.loop.save_model (.model.PID.partial.keras), TensorFlow's checkpoint writer
# (*.tempstateNNN files, ckpt-N_temp/ folders), export's writability probe (.write-test.XXXX).
TEMP_PATTERNS = (".*.tmp", ".*.partial.keras", "*.tempstate*", "*_temp", ".write-test.*")
CACHE_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def is_temp(name: str) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in TEMP_PATTERNS)


def temp_files(root: Path) -> list[str]:
    """Temporary-named files and folders under root (a temp folder's contents not listed)."""
    if not root.exists():
        return []
    found = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if is_temp(p.name) and not any(is_temp(part) for part in rel.parts[:-1]):
            found.append(str(rel))
    return found


def load_json(path: Path, problems: list[str]):
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        problems.append(f"{path.name}: unreadable JSON ({e})")
        return None


# --- training run folders ---------------------------------------------------------------

def read_history(path: Path, problems: list[str]) -> list[dict]:
    if not path.exists():
        return []
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        epochs = [int(r["epoch"]) for r in rows]
        for r in rows:
            [float(v) for v in r.values()]
    except (OSError, ValueError, KeyError, TypeError) as e:
        problems.append(f"history.csv: unreadable ({e})")
        return []
    if epochs != list(range(1, len(epochs) + 1)):
        problems.append(f"history.csv: epochs {epochs} are not 1..{len(epochs)} once each")
    return rows


def checkpoint_epoch(prefix: Path) -> int:
    """Read every tensor of a TF checkpoint (the reader checks each one's CRC) and return its
    `epoch` variable; raises if any part is missing or damaged."""
    import tensorflow as tf
    reader = tf.train.load_checkpoint(str(prefix))
    for name in reader.get_variable_to_shape_map():
        reader.get_tensor(name)
    return int(reader.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE"))


def check_checkpoints(ckpt: Path, problems: list[str]) -> int | None:
    """The epoch of the checkpoint that `ckpt/checkpoint` names (None: none yet). Every
    checkpoint with a final name, listed or not, must be complete."""
    if not ckpt.is_dir():
        return None
    state = ckpt / "checkpoint"
    listed = []
    if state.exists():
        listed = re.findall(r'model_checkpoint_path: "([^"]+)"', state.read_text())
        if not listed:
            problems.append("ckpt/checkpoint: names no checkpoint")
    latest = None
    for index in sorted(ckpt.glob("ckpt-*.index")):
        prefix = index.with_suffix("")
        try:
            epoch = checkpoint_epoch(prefix)
        except Exception as e:  # TF raises DataLossError, NotFoundError, ...
            problems.append(f"ckpt/{prefix.name}: final name but unreadable ({type(e).__name__})")
            continue
        if epoch != int(prefix.name.split("-")[1]):
            problems.append(f"ckpt/{prefix.name}: holds epoch {epoch}")
        if listed and prefix.name == listed[0]:
            latest = epoch
    if listed and latest is None:
        problems.append(f"ckpt/checkpoint names {listed[0]}, which is missing or unreadable")
    return latest


def keras_weights(path: Path) -> list[np.ndarray]:
    import tf_keras as keras

    from train.activations import custom_objects
    model = keras.models.load_model(path, custom_objects=custom_objects(), safe_mode=True, compile=False)
    return [np.asarray(w) for w in model.get_weights()]


def check_run(run: Path) -> tuple[list[str], dict]:
    problems: list[str] = []
    load_json(run / "config.json", problems)
    rows = read_history(run / "history.csv", problems)
    epoch = check_checkpoints(run / "ckpt", problems)
    if epoch is not None and epoch > len(rows):
        problems.append(f"checkpoint at epoch {epoch} but history.csv has {len(rows)} rows (written first)")
    if (run / "model.keras").exists():
        try:
            keras_weights(run / "model.keras")
        except Exception as e:
            problems.append(f"model.keras: final name but does not load ({type(e).__name__})")
    metrics = load_json(run / "metrics.json", problems)
    if metrics is not None and not (run / "model.keras").exists():
        problems.append("metrics.json written before model.keras")
    if (run / "accuracy.png").exists() and not png_ok(run / "accuracy.png"):
        problems.append("accuracy.png: final name but a partial PNG")
    return problems, {"history": rows, "ckpt_epoch": epoch, "finished": metrics is not None,
                      "temp": temp_files(run)}


def png_ok(path: Path) -> bool:
    from PIL import Image
    try:
        with Image.open(path) as im:
            im.load()  # decodes every row: a truncated file fails here
        return True
    except Exception:  # PIL raises OSError, SyntaxError, ValueError ... on damaged files
        return False


# --- export bundles ---------------------------------------------------------------------

def load_model_file(path: Path) -> None:
    """Raise unless the device runtime accepts the file (as a device would load it)."""
    if path.suffix == ".tflite":
        from ai_edge_litert.interpreter import Interpreter
        Interpreter(model_path=str(path)).allocate_tensors()
    else:
        import onnxruntime as ort
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _npz_ok(path: Path) -> bool:
    try:
        with np.load(path, allow_pickle=False) as z:
            [z[k] for k in z.files]
        return True
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError):
        return False


def check_bundle(out: Path) -> tuple[list[str], dict]:
    problems: list[str] = []
    manifest = load_json(out / "manifest.json", problems) if out.exists() else None
    listed = {}
    if manifest is not None:
        for key in ("test_split", "reference"):
            ref = manifest.get(key) or {}
            if ref.get("file") and (not (out / ref["file"]).is_file() or sha256_file(out / ref["file"]) != ref["sha256"]):
                problems.append(f"manifest lists {ref['file']} but the file is missing or differs")
        for a in manifest.get("artifacts", []):
            f = out / a["file"]
            if not f.is_file():
                problems.append(f"manifest lists {a['file']} but it is missing")
            elif f.stat().st_size != a["size_bytes"] or sha256_file(f) != a["sha256"]:
                problems.append(f"manifest lists {a['file']} but its size or sha256 differs")
            else:
                listed[a["file"]] = a["sha256"]
    present = {}
    for f in sorted(out.glob("*")) if out.exists() else []:
        if is_temp(f.name) or not f.is_file():
            continue
        if f.suffix in (".tflite", ".onnx"):
            try:
                load_model_file(f)
                present[f.name] = sha256_file(f)
            except Exception as e:
                problems.append(f"{f.name}: final name but the runtime rejects it ({type(e).__name__})")
        elif f.suffix == ".npz" and not _npz_ok(f):
            problems.append(f"{f.name}: final name but not a complete .npz")
        elif f.suffix == ".json":
            load_json(f, problems)
    return problems, {"listed": listed, "present": present, "temp": temp_files(out),
                      "manifest": manifest}


# --- the decoded-data cache -------------------------------------------------------------

def read_cache(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in CACHE_ARRAYS}


def check_cache(cache: Path) -> tuple[list[str], dict]:
    problems, entries = [], {}
    for f in sorted(cache.glob("cifar10-*.npz")) if cache.exists() else []:
        try:
            arrays = read_cache(f)
            entries[f.name] = {k: sha_of(v) for k, v in arrays.items()}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
            problems.append(f"{f.name}: final name but not a complete cache ({type(e).__name__})")
    return problems, {"entries": entries, "temp": temp_files(cache)}


def sha_of(a: np.ndarray) -> str:
    import hashlib
    return hashlib.sha256(f"{a.dtype}{a.shape}".encode() + np.ascontiguousarray(a).tobytes()).hexdigest()
