"""Read a device bundle (docs/bundle.md) or a set of bare model files, defensively.

Everything here treats the bundle as untrusted input: names must be bare file names inside
the bundle, hashes are checked before anything is loaded, arrays are read without pickle.
Whole-run problems raise BenchError; one artifact's problems are recorded on the Artifact
(`problem`) so it becomes an error row while the others still run.
"""
from __future__ import annotations

import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runtime.backends import NORMALIZATION, OUTPUTS
from runtime.errors import BenchError, one_line
from runtime.fileio import sha256_file
from runtime.imagefolder import is_imagefolder

SCHEMA = "edge-bundle/1"
FORMATS = {".tflite": "tflite", ".onnx": "onnx"}
KNOWN_MODES = ("float32", "float16", "dynamic", "int8", "qat")
DEFAULT_NORMALIZATION = NORMALIZATION  # for a manifest that gives none: pixels / 255


@dataclass
class Artifact:
    """One model to measure. `file` is the name used in rows; `path` where it is on disk."""

    file: str
    path: Path | None
    format: str | None
    mode: str | None = None
    act: str | None = None
    arch: str | None = None
    sha256: str | None = None  # None: a bare --model file, nothing to check against
    layout: str | None = None  # manifest hint; the model's own shape decides when it can
    input_quant: tuple[float, int] | None = None  # manifest copies; used only where the model
    output_quant: tuple[float, int] | None = None  # cannot say (integer ONNX graph inputs)
    parity_accuracy: float | None = None
    # Images per call export measured with. Dynamic-range ONNX picks one activation scale per
    # call, so its answers depend on the batch: the accuracy pass must use the same batch.
    parity_batch: int | None = None
    problem: str | None = None  # set: do not load, report this as the row's error


@dataclass
class Inputs:
    """What the bench runs: artifacts plus where the images, labels and reference live."""

    artifacts: list[Artifact]
    test_path: Path | None = None
    reference_path: Path | None = None
    reference_key: str = "probs"
    normalization: tuple[float, float] = DEFAULT_NORMALIZATION
    source_run: dict = field(default_factory=dict)
    classes: list = field(default_factory=list)
    bundle_dir: Path | None = None
    folder: Path | None = None  # bare models: an image folder (or archive) to take test images from
    outputs: str = "probabilities"  # what the models output (runtime.backends.OUTPUTS)


def safe_name(name) -> str | None:
    """The reason `name` is not a bare file name inside the bundle, or None if it is."""
    if not isinstance(name, str) or not name:
        return f"file name must be a non-empty string, got {name!r}"
    if "/" in name or "\\" in name or ".." in name or "\x00" in name or name == ".":
        return f"file name {name!r} must be a bare name inside the bundle (no '/' or '..')"
    return None


def _quant(spec) -> tuple[float, int] | None:
    q = spec.get("quantization") if isinstance(spec, dict) else None
    try:
        return (float(q["scale"]), int(q["zero_point"])) if q else None
    except (KeyError, TypeError, ValueError):
        return None


def _checked_file(bundle: Path, entry, what: str) -> Path:
    """Resolve a test_split/reference entry and verify its hash; these are run-level."""
    if not isinstance(entry, dict):
        raise BenchError(f"manifest: {what} must be an object with 'file' and 'sha256'")
    bad = safe_name(entry.get("file"))
    if bad:
        raise BenchError(f"manifest: {what}: {bad}")
    path = bundle / entry["file"]
    if not path.is_file():
        raise BenchError(f"{what} file missing: {path}")
    if entry.get("sha256") and sha256_file(path) != entry["sha256"]:
        raise BenchError(f"{path}: sha256 does not match the manifest (damaged copy?)")
    return path


def _numbers(v):
    """A number, or a non-empty list of them (one per channel)."""
    if isinstance(v, list):
        if not v:
            raise ValueError("empty")
        return [float(x) for x in v]
    if isinstance(v, bool):
        raise TypeError("a bool")
    return float(v)


def load_bundle(directory: str | os.PathLike) -> Inputs:
    bundle = Path(directory)
    if not bundle.is_dir():
        raise BenchError(f"bundle not found: {bundle}")
    mpath = bundle / "manifest.json"
    if not mpath.is_file():
        raise BenchError(f"no manifest.json in {bundle} (is it a bundle from `python -m export`?)")
    try:
        manifest = json.loads(mpath.read_text())
    except OSError as e:
        raise BenchError(f"cannot read {mpath}: {e.strerror or one_line(e)}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BenchError(f"{mpath}: not valid JSON: {one_line(e)}") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        got = manifest.get("schema") if isinstance(manifest, dict) else type(manifest).__name__
        raise BenchError(f"{mpath}: schema {got!r} is not {SCHEMA!r}")
    entries = manifest.get("artifacts")
    if not isinstance(entries, list):
        raise BenchError(f"{mpath}: 'artifacts' must be a list")

    source = manifest.get("source_run") if isinstance(manifest.get("source_run"), dict) else {}
    norm = (manifest.get("input") or {}).get("normalization") or {}
    try:
        normalization = (_numbers(norm.get("scale", DEFAULT_NORMALIZATION[0])),
                         _numbers(norm.get("offset", DEFAULT_NORMALIZATION[1])))
    except (TypeError, ValueError):
        raise BenchError(f"{mpath}: input.normalization must hold numbers (or one per channel)") from None

    test_path = _checked_file(bundle, manifest.get("test_split"), "test_split")
    ref_entry = manifest.get("reference")
    ref_path = _checked_file(bundle, ref_entry, "reference") if ref_entry else None

    outputs = manifest.get("outputs", "probabilities")
    if outputs not in OUTPUTS:
        raise BenchError(f"{mpath}: outputs {outputs!r} is not one of {', '.join(OUTPUTS)}")
    artifacts = [_artifact(bundle, i, e, source) for i, e in enumerate(entries)]
    return Inputs(artifacts, test_path, ref_path, (ref_entry or {}).get("key", "probs"),
                  normalization, source, manifest.get("classes") or [], bundle, outputs=outputs)


def _artifact(bundle: Path, i: int, e, source: dict) -> Artifact:
    if not isinstance(e, dict):
        return Artifact(f"<artifact {i}>", None, None, problem="manifest entry is not an object")
    name = e.get("file")
    art = Artifact(name if isinstance(name, str) else f"<artifact {i}>", None, e.get("format"),
                   mode=e.get("mode"), act=source.get("act"), arch=source.get("arch"),
                   sha256=e.get("sha256"), layout=(e.get("input") or {}).get("layout"),
                   input_quant=_quant(e.get("input")), output_quant=_quant(e.get("output")),
                   parity_accuracy=(e.get("parity") or {}).get("test_accuracy"),
                   parity_batch=(e.get("parity") or {}).get("batch"))
    art.problem = safe_name(name)
    if art.problem:
        return art
    art.path = bundle / name
    if art.format not in FORMATS.values():
        art.problem = f"unknown format {art.format!r} (expected one of {sorted(FORMATS.values())})"
    elif not isinstance(art.sha256, str):
        art.problem = "manifest entry has no sha256; refusing to load an unverified model"
    return art


def bare_artifacts(paths, data: str | None = None, reference: str | None = None) -> Inputs:
    """`--model FILE ...`: no hashes to check. The mode is guessed from the file name; the
    activation and architecture come from an export manifest beside the file, if it lists
    this very file (`sibling_labels`), else they stay unknown."""
    arts, manifests = [], {}
    for p in paths:
        path = Path(p)
        fmt = FORMATS.get(path.suffix.lower())
        tokens = re.split(r"[^a-z0-9]+", path.stem.lower())  # "seed_int8" -> int8
        mode = next((t for t in tokens if t in KNOWN_MODES), None)
        art = Artifact(str(p), path, fmt, mode=mode)
        if fmt is None:
            art.problem = f"unknown model format {path.suffix!r} (expected .tflite or .onnx)"
        elif not path.is_file():
            art.problem = f"model file not found: {path}"
        else:
            labels = sibling_labels(path, manifests)
            art.act, art.arch = labels.get("act"), labels.get("arch")
            art.mode = labels.get("mode") or art.mode
        arts.append(art)
    test = Path(data) if data else None
    if test is not None and not test.exists():
        raise BenchError(f"data not found: {test}")
    folder = test if test is not None and not test.name.lower().endswith(".npz") and is_imagefolder(test) else None
    if folder is not None:  # decoded once by the bench (runtime.measure.folder_data)
        test = None
    elif test is not None and not test.is_file():
        raise BenchError(f"data is not a file: {test} (want an .npz, or an image folder with class subfolders)")
    ref = Path(reference) if reference else None
    if ref is not None and not ref.is_file():
        raise BenchError(f"reference file not found: {ref}")
    return Inputs(arts, test, ref, folder=folder)


def sibling_labels(path: Path, cache: dict | None = None) -> dict:
    """act, arch and mode of a bare model file from the export manifest in its folder.

    Without them, benches of two `--model` sets (a ReLU and a TanhExp export, say) cannot be
    told apart by runtime.report and merge into one row. Only a manifest entry naming this
    file *and* its sha256 counts: a renamed, re-exported or edited file keeps no labels. Any
    problem with the manifest means no labels, never an error: a bare file promises nothing.
    """
    cache = {} if cache is None else cache
    folder = path.resolve().parent
    if folder not in cache:
        try:
            m = json.loads((folder / "manifest.json").read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            m = None
        cache[folder] = m if isinstance(m, dict) and m.get("schema") == SCHEMA else None
    m = cache[folder]
    entries = m.get("artifacts") if m else None
    source = m.get("source_run") if m else None
    if not isinstance(entries, list) or not isinstance(source, dict):
        return {}
    mine = [e for e in entries if isinstance(e, dict) and e.get("file") == path.name]
    try:
        if len(mine) != 1 or mine[0].get("sha256") != sha256_file(path):
            return {}
    except OSError:  # unreadable: the bench's own load reports it as the row's error
        return {}
    out = {"act": source.get("act"), "arch": source.get("arch"), "mode": mine[0].get("mode")}
    return {k: v for k, v in out.items() if isinstance(v, str) and v}


def verify(art: Artifact) -> tuple[bool | None, str | None]:
    """(sha256_ok, reason not to load it). Called right before loading; sha256_ok is None
    where there was nothing to check (bare model files, unusable manifest entries)."""
    if art.problem:
        return None, art.problem
    if art.path is None or not art.path.is_file():
        return None, f"model file missing: {art.path}"
    if art.sha256 is None:
        return None, None
    if sha256_file(art.path) != art.sha256:
        return False, f"{art.file}: sha256 does not match the manifest (damaged copy?); not benchmarked"
    return True, None


def _npz(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise BenchError(f"{path}: cannot read as .npz: {one_line(e)}") from None


def load_test(path: Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """x: uint8 (N, H, W, C); y: integer (N,) or None (latency/agreement only)."""
    z = _npz(path)
    if "x" not in z:
        raise BenchError(f"{path}: no array 'x' (expected x: uint8 (N, 32, 32, 3))")
    x, y = z["x"], z.get("y")
    if x.dtype != np.uint8 or x.ndim != 4:
        raise BenchError(f"{path}: x must be uint8 (N, H, W, C) NHWC, got {x.dtype} {x.shape}")
    if y is not None and (y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer)):
        raise BenchError(f"{path}: y must be integer labels (N,) = ({len(x)},), got {y.dtype} {y.shape}")
    if limit is not None:
        x, y = x[:limit], (None if y is None else y[:limit])
    if len(x) == 0:
        raise BenchError(f"{path}: no images")
    return np.ascontiguousarray(x), y


def load_reference(path: Path, key: str, count: int) -> np.ndarray:
    z = _npz(path)
    if key not in z:
        raise BenchError(f"{path}: no array {key!r}")
    p = z[key]
    if p.ndim != 2 or len(p) < count or not np.issubdtype(p.dtype, np.floating):
        raise BenchError(f"{path}: {key} must be float (N >= {count}, classes), got {p.dtype} {p.shape}")
    return np.asarray(p[:count], dtype=np.float32)
