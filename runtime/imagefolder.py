"""Image folders: class subfolders of images, as a directory or a .tar/.tar.gz of one. Needs
only numpy and Pillow, so a device reads the same folders the training machine does.

Two layouts, told apart by the folder names:
- split: `[top/]train/<class>/*` and `[top/]test/<class>/*` (the shipped CIFAR-10 copy is
  `cifar10-jpeg/{train,test}/<class>/NNNN.jpg`); the folders say which image is a test image.
- single: `[top/]<class>/*` and nothing else. The test split is then drawn here, seeded and
  stratified (TEST_FRACTION of each class, SPLIT_SEED), and recorded in `info["split"]`, so
  that export and bench hold out the very same images.

Class names are the folder names, sorted: label i is the i-th name. CIFAR-10's ten names
sorted are its own label order, so the shipped copy keeps CIFAR's labels.

Images of one size are returned as they are (a model of another input size resizes them
with `resize_images`). Images of several sizes cannot be stacked: given `size`, each is
resized to it as it is decoded (RESIZE); without it, the error names two files that differ.

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

from runtime.errors import DataError

IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")
SPLITS = ("train", "test")
TEST_FRACTION = 0.2
SPLIT_SEED = 0
RESIZE = "bilinear (Pillow), uint8 in and out"


def resize_images(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """uint8 NHWC images to h x w, as RESIZE says: the one resize of export, bench and the
    experiments that train on resized images."""
    if not len(x):
        return np.zeros((0, h, w, x.shape[3]), np.uint8)
    if x.shape[1:3] == (h, w):
        return x
    return np.stack([_resize(im, h, w) for im in x])


def _resize(im: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.fromarray(im).resize((w, h), Image.BILINEAR))


def _decode(data: bytes, name: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(io.BytesIO(data)) as im:
            # Palette images are RGB in disguise; grey and RGBA would silently change what the
            # model sees (a dropped alpha, a replicated channel), so they are refused.
            if im.mode not in ("RGB", "P"):
                raise DataError(f"{name}: image mode {im.mode}, expected RGB")
            return np.asarray(im.convert("RGB") if im.mode != "RGB" else im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{name}: not a readable image ({e})") from None


def _place(parts: list[str]) -> tuple[str | None, str, str]:
    """(split or None, class folder, the folder holding the class folders) of an image path."""
    for i, p in enumerate(parts[:-2]):
        if p in SPLITS:  # the first train/test component decides; the class folder follows it
            return p, parts[i + 1], "/".join(parts[:i])
    return None, parts[-2] if len(parts) > 1 else "", "/".join(parts[:-2])


def _layout(images: list[tuple[str, list[str]]]) -> str:
    if not images:
        raise DataError("no images found (want train/<class>/*, test/<class>/*, or <class>/*)")
    return "split" if any(_place(parts)[0] for _, parts in images) else "single"


def _check_place(name: str, parts: list[str], layout: str, roots: set) -> tuple[str | None, str] | None:
    split, cls, root = _place(parts)
    if layout == "split":
        if split is None:
            return None  # beside train/ and test/ (a README, a preview): not part of the data
        if len(parts) != len(root.split("/")) * bool(root) + 3:
            raise DataError(f"{name}: images must sit directly in {split}/<class>/")
    elif not cls:
        raise DataError(f"{name}: an image outside any class folder (want <class>/{name})")
    roots.add(root)
    if len(roots) > 1:
        raise DataError(f"{name}: images under two different folders ({' and '.join(sorted(roots)) or '.'}); "
                        "want one folder of class folders")
    return split, cls


def _collect(items, size=None) -> tuple:
    """items: iterable of (member name, bytes loader). Sorted for a deterministic order."""
    images = [(n, n.replace("\\", "/").split("/"), get) for n, get in sorted(items, key=lambda t: t[0])
              if n.lower().endswith(IMAGE_EXT)]
    layout = _layout([(n, p) for n, p, _ in images])
    roots: set = set()
    placed = [(n, get, *where) for n, parts, get in images
              if (where := _check_place(n, parts, layout, roots)) is not None]
    decoded, sizes = [], {}
    for name, get, split, cls in placed:
        img = _decode(get(), name)
        sizes.setdefault(img.shape[:2], name)
        decoded.append((split, cls, img, name))
    resized = None
    if len(sizes) > 1:
        (s1, n1), (s2, n2) = list(sizes.items())[:2]
        if size is None:
            raise DataError(f"images of different sizes ({n1} is {s1[1]}x{s1[0]}, {n2} is {s2[1]}x{s2[0]}); "
                            "they are resized to a model's input only where the model is known "
                            "(python -m export --model, runtime.bench --model)")
        h, w = size() if callable(size) else size
        decoded = [(s, c, _resize(im, h, w) if im.shape[:2] != (h, w) else im, n) for s, c, im, n in decoded]
        resized = {"from": "mixed", "sizes": len(sizes), "to": [h, w], "method": RESIZE}
    classes = sorted({c for _, c, _, _ in decoded})
    if layout == "split":
        by_split = {s: [d for d in decoded if d[0] == s] for s in SPLITS}
        split_info = {"layout": "split"}
    else:
        by_split, split_info = _seeded_split(decoded, classes)
    for s in SPLITS:
        if not by_split[s]:
            raise DataError(f"no images found under {s}/<class>/")
        missing = sorted(set(classes) - {c for _, c, _, _ in by_split[s]})
        if missing:
            raise DataError(f"{s}/ has no images for class(es): {', '.join(missing)} "
                            f"(classes are the folder names: {', '.join(classes)})")
    arrays = tuple(a for s in SPLITS for a in (
        np.stack([im for _, _, im, _ in by_split[s]]),
        np.asarray([classes.index(c) for _, c, _, _ in by_split[s]], dtype=np.int64)))
    return arrays, {"classes": classes, "split": split_info, "resized": resized}


def _seeded_split(decoded: list, classes: list) -> tuple[dict, dict]:
    """One folder: TEST_FRACTION of each class (at least one image, never all of them) to test,
    drawn with SPLIT_SEED from the images in name order; the same folder always splits the same."""
    rng = np.random.default_rng(SPLIT_SEED)
    out = {"train": [], "test": []}
    for c in classes:
        mine = [d for d in decoded if d[1] == c]
        if len(mine) < 2:
            raise DataError(f"class folder {c!r} holds {len(mine)} image; a single folder is split into "
                            "train and test, so each class needs at least 2 (or give train/ and test/ folders)")
        k = min(len(mine) - 1, max(1, round(TEST_FRACTION * len(mine))))
        test = set(rng.permutation(len(mine))[:k].tolist())
        for i, d in enumerate(mine):
            out["test" if i in test else "train"].append(d)
    return out, {"layout": "single", "test_fraction": TEST_FRACTION, "seed": SPLIT_SEED,
                 "stratified": True, "test_images": len(out["test"])}


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


def read(path: str, size=None) -> tuple[tuple, dict]:
    """((x_train, y_train, x_test, y_test), info) from a folder or an archive of one; uint8
    NHWC images and int64 labels. info: classes, split (how test was chosen), resized.
    size: (H, W) for images of mixed sizes, or a function giving it, asked only for those."""
    p = Path(path)
    if p.is_dir():
        return _collect(((str(f.relative_to(p)), _reader(f)) for f in _files(p)), size)
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
    return _collect(((n, (lambda n=n: data[n])) for n in data), size)


def is_imagefolder(path: str | os.PathLike) -> bool:
    """A folder, .tar or .tar.gz: what `read` takes (it says what is wrong with one that is not)."""
    p = Path(path)
    return p.is_dir() or p.name.lower().endswith((".tar", ".tar.gz", ".tgz"))
