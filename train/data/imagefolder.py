"""Image-folder CIFAR-10: `train/<class>/*.{jpg,png}` and `test/<class>/*`, as a directory or a
.tar/.tar.gz of one (the shipped copy is `cifar10-jpeg/{train,test}/<class>/NNNN.jpg`).

Archives are read member by member in memory: nothing is extracted, so hostile member
names ('../', absolute paths, links) can never write outside anything; links are refused.
"""
from __future__ import annotations

import io
import os
import tarfile
import zlib
from pathlib import Path

import numpy as np

from train.data.errors import DataError

IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")


def _classes():
    from train.data import CLASSES
    return CLASSES


def _decode(data: bytes, name: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.mode not in ("RGB", "L", "P", "RGBA"):
                raise DataError(f"{name}: image mode {im.mode}, expected RGB")
            if im.mode != "RGB":
                if im.mode in ("L", "RGBA"):
                    raise DataError(f"{name}: image mode {im.mode}, expected RGB")
                im = im.convert("RGB")
            return np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{name}: not a readable image ({e})") from None


def _label(parts: list[str], name: str) -> tuple[str, int] | None:
    """('train'|'test', class index) from a member path, or None for files to ignore."""
    if not name.lower().endswith(IMAGE_EXT):
        return None
    # The split folder is the first 'train'/'test' component; the class folder follows it.
    for i, p in enumerate(parts[:-2]):
        if p in ("train", "test"):
            cls = parts[i + 1]
            if cls not in _classes():
                raise DataError(f"{name}: unknown class folder {cls!r} (expected one of {', '.join(_classes())})")
            if i + 3 != len(parts):
                raise DataError(f"{name}: images must sit directly in {p}/<class>/")
            return p, _classes().index(cls)
    return None


def _collect(items) -> tuple:
    """items: iterable of (member name, bytes loader). Sorted for a deterministic order."""
    out = {"train": ([], []), "test": ([], [])}
    first = None  # every image must have the first one's size (CIFAR's 32x32, or any other)
    for name, get in sorted(items, key=lambda t: t[0]):
        lab = _label(name.replace("\\", "/").split("/"), name)
        if lab is None:
            continue
        split, y = lab
        img = _decode(get(), name)
        first = first or (name, img.shape)
        if img.shape != first[1]:
            raise DataError(f"{name}: image is {img.shape[1]}x{img.shape[0]}, expected {first[1][1]}x{first[1][0]} "
                            f"like {first[0]} (every image must have one size)")
        out[split][0].append(img)
        out[split][1].append(y)
    for split in ("train", "test"):
        if not out[split][0]:
            raise DataError(f"no images found under {split}/<class>/")
        present = set(out[split][1])
        missing = [c for i, c in enumerate(_classes()) if i not in present]
        if missing:
            raise DataError(f"{split}/ has no images for class(es): {', '.join(missing)}")
    return tuple(a for split in ("train", "test")
                 for a in (np.stack(out[split][0]), np.asarray(out[split][1], dtype=np.int64)))


def _files(root: Path) -> list[Path]:
    """Every file under root; an unreadable folder is an error (Path.rglob skips it silently,
    which would turn it into a misleading 'no images for class ...')."""
    def fail(e: OSError):
        raise DataError(f"cannot read {e.filename}: {e.strerror}")
    return [f for d, _, names in os.walk(root, onerror=fail) for f in (Path(d) / n for n in names) if f.is_file()]


def _reader(f: Path):
    def read():
        try:
            return f.read_bytes()
        except OSError as e:
            raise DataError(f"cannot read {f}: {e.strerror}") from None
    return read


def read(path: str) -> tuple:
    p = Path(path)
    if p.is_dir():
        return _collect((str(f.relative_to(p)), _reader(f)) for f in _files(p))
    try:
        with tarfile.open(p, "r:*") as tf:
            items = []
            for m in tf:  # iterating reads the whole archive: a truncated one fails here
                if m.issym() or m.islnk():
                    raise DataError(f"{path}: archive member {m.name!r} is a link; refusing it")
                if m.isfile() and not m.name.startswith("/") and ".." not in m.name.split("/"):
                    items.append((m.name, tf.extractfile(m).read()))
                elif m.isfile():
                    raise DataError(f"{path}: archive member {m.name!r} points outside the archive")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(f"{path}: unreadable or truncated archive ({e})") from None
    data = dict(items)
    return _collect((n, (lambda n=n: data[n])) for n in data)
