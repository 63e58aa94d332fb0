"""Every data source the loader reads, and every bad-data case, on tiny synthetic files."""
import os
import tarfile

import numpy as np
import pytest

from tests.conftest import CLASSES, png_bytes, write_imagefolder, write_pybatches, write_tar
from train.data import DataError, load


def _check(s, tiny, val=20):
    xtr, ytr, xte, yte = tiny
    assert s.x_train.dtype == np.uint8 and s.x_train.shape[1:] == (32, 32, 3)
    assert len(s.y_train) + len(s.y_val) == len(ytr) and len(s.y_val) == val
    # Same images as written (order aside): compare sorted per-image checksums.
    got = np.sort(np.concatenate([s.x_train, s.x_val]).reshape(len(ytr), -1).sum(1))
    np.testing.assert_array_equal(got, np.sort(xtr.reshape(len(ytr), -1).sum(1)))
    np.testing.assert_array_equal(np.bincount(s.y_test, minlength=10), np.bincount(yte, minlength=10))


@pytest.mark.parametrize("fmt", ["png", "bmp"])
def test_imagefolder_directory(tmp_path, tiny, fmt):
    root = write_imagefolder(tmp_path / "d", tiny, fmt)
    s = load(str(root), val_size=20, seed=0)
    _check(s, tiny)
    assert s.source["kind"] == "imagefolder"


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz"])
def test_imagefolder_archive(tmp_path, tiny_folder, tiny, suffix):
    arc = write_tar(tiny_folder, tmp_path / f"c{suffix}", "cifar10-jpeg")
    _check(load(str(arc), val_size=20), tiny)


def test_pybatches_dir_and_archive(tmp_path, tiny):
    d = write_pybatches(tmp_path / "cifar-10-batches-py", tiny)
    _check(load(str(d), val_size=20), tiny)
    _check(load(str(tmp_path), val_size=20), tiny)  # the parent folder works too
    arc = write_tar(d, tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py")
    s = load(str(arc), val_size=20)
    _check(s, tiny)
    assert s.source["kind"] == "pybatches"
    # Pixels survive the CHW row layout exactly (no JPEG here).
    xs = np.concatenate([s.x_train, s.x_val])
    assert {a.tobytes() for a in xs} == {a.tobytes() for a in tiny[0]}


def test_env_var_and_val_split_is_seeded(tmp_path, tiny_folder, monkeypatch):
    monkeypatch.setenv("EDGECNN_DATA", str(tiny_folder))
    a, b, c = load(None, 30, seed=1), load(None, 30, seed=1), load(None, 30, seed=2)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_val, c.x_val)
    assert len(load(None, 0).y_val) == 0


def test_cache_is_used_and_keyed_by_content(tmp_path, tiny_folder):
    arc = write_tar(tiny_folder, tmp_path / "c.tar", "c")
    assert load(str(arc), 10).source["cache_hit"] is False
    assert load(str(arc), 10).source["cache_hit"] is True
    # Same name, different bytes: a fresh decode, not the stale cache.
    with tarfile.open(arc, "a") as tf:
        info = tarfile.TarInfo("c/train/cat/extra.png")
        data = png_bytes(np.zeros((32, 32, 3), np.uint8))
        info.size = len(data)
        import io
        tf.addfile(info, io.BytesIO(data))
    s = load(str(arc), 10)
    assert s.source["cache_hit"] is False and len(s.y_train) + len(s.y_val) == 201


def test_corrupt_cache_is_rebuilt(tmp_path, tiny_folder):
    s = load(str(tiny_folder), 10)
    with open(s.source["cache"], "wb") as f:
        f.write(b"garbage")
    assert load(str(tiny_folder), 10).source["cache_hit"] is False


def _one_line(excinfo):
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


def test_missing_path():
    with pytest.raises(DataError) as e:
        load("/nonexistent/cifar")
    assert "/nonexistent/cifar" in _one_line(e)


def test_unknown_class_folder(tmp_path, tiny):
    root = write_imagefolder(tmp_path / "d", tiny)
    (root / "train" / "cat").rename(root / "train" / "kitten")
    with pytest.raises(DataError) as e:
        load(str(root))
    assert "kitten" in _one_line(e)


def test_missing_class(tmp_path, tiny):
    root = write_imagefolder(tmp_path / "d", tiny)
    for f in (root / "test" / "frog").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="frog"):
        load(str(root))


@pytest.mark.parametrize("shape", [(28, 28, 3), (32, 32)])
def test_wrong_image_shape_names_the_file(tmp_path, tiny, shape):
    root = write_imagefolder(tmp_path / "d", tiny)
    bad = root / "train" / "dog" / "0005.png"
    from PIL import Image
    Image.fromarray(np.zeros(shape, np.uint8)).save(bad)
    with pytest.raises(DataError) as e:
        load(str(root))
    assert "0005.png" in _one_line(e)


def test_not_an_image(tmp_path, tiny):
    root = write_imagefolder(tmp_path / "d", tiny)
    (root / "train" / "dog" / "0005.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="0005.png"):
        load(str(root))


def test_truncated_archive_and_no_half_written_cache(tmp_path, tiny_folder):
    arc = write_tar(tiny_folder, tmp_path / "c.tar.gz", "c")
    data = arc.read_bytes()
    arc.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as e:
        load(str(arc))
    assert "c.tar.gz" in _one_line(e)
    cache = os.environ["EDGECNN_CACHE"]
    assert not any(p.endswith(".tmp") for p in os.listdir(cache)) if os.path.isdir(cache) else True


def test_archive_with_escaping_or_link_members_is_refused(tmp_path, tiny):
    arc = tmp_path / "evil.tar"
    with tarfile.open(arc, "w") as tf:
        info = tarfile.TarInfo("c/train/cat/link.png")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(DataError, match="link"):
        load(str(arc))
    arc2 = tmp_path / "evil2.tar"
    with tarfile.open(arc2, "w") as tf:
        import io
        info = tarfile.TarInfo("../train/cat/x.png")
        data = png_bytes(tiny[0][0])
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError, match="outside"):
        load(str(arc2))


def test_pickle_with_code_is_refused(tmp_path, tiny):
    d = write_pybatches(tmp_path / "cifar-10-batches-py", tiny)
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(d / "test_batch", "wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(DataError, match="refusing"):
        load(str(d))


def test_val_size_too_large(tiny_folder):
    with pytest.raises(DataError, match="val-size"):
        load(str(tiny_folder), val_size=10_000)
    assert CLASSES[0] == "airplane"


def test_test_split_prefix_covers_all_classes(tmp_path, tiny_folder):
    s = load(str(tiny_folder), 10)
    # the folder lists classes in order; the loader's fixed shuffle mixes them
    assert len(set(s.y_test[:20].tolist())) >= 6
    np.testing.assert_array_equal(s.y_test, load(str(tiny_folder), 10, seed=5).y_test)


def test_official_offline_is_one_line(monkeypatch):
    import tf_keras as keras

    def offline():
        raise Exception("URL fetch failure on https://example.invalid/cifar-10-python.tar.gz: None -- "
                        "[Errno -3] Temporary failure in name resolution\nmore detail")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(DataError) as e:
        load("official")
    msg = _one_line(e)
    assert "official" in msg and "shipped" in msg


def _single_folder(root, names, per_class, sizes=((32, 32),), seed=0):
    """<class>/NNNN.png for any class names; image i of a class has size sizes[i % len(sizes)]."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    for c in names:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            h, w = sizes[i % len(sizes)]
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / c / f"{i:04d}.png")
    return root


def test_single_folder_is_split_seeded_and_stratified(tmp_path):
    names = ["zebra", "apple", "kiwi"]  # not CIFAR's: classes are the folder names, sorted
    root = _single_folder(tmp_path / "fruit", names, 10)
    a = load(str(root), val_size=0)
    assert a.classes == ("apple", "kiwi", "zebra")
    assert np.bincount(a.y_test).tolist() == [2, 2, 2] and np.bincount(a.y_train).tolist() == [8, 8, 8]
    split = a.source["split"]
    assert split["layout"] == "single" and split["seed"] == 0 and split["test_fraction"] == 0.2
    # every image exactly once, in train or test
    got = sorted(im.tobytes() for im in np.concatenate([a.x_train, a.x_test]))
    from PIL import Image
    want = sorted(np.asarray(Image.open(f)).tobytes() for f in root.rglob("*.png"))
    assert got == want
    # the same folder splits the same, even decoded afresh (no cache)
    b = load(str(root), val_size=0, cache_dir=tmp_path / "fresh")
    assert b.source["cache_hit"] is False
    assert sorted(im.tobytes() for im in a.x_test) == sorted(im.tobytes() for im in b.x_test)


def test_single_folder_class_of_one_image_is_one_line(tmp_path):
    root = _single_folder(tmp_path / "d", ["a", "b"], 3)
    for f in list((root / "b").iterdir())[1:]:
        f.unlink()
    with pytest.raises(DataError, match="'b' holds 1 image"):
        load(str(root), val_size=0)


def test_images_in_two_folders_of_class_folders_are_refused(tmp_path):
    root = _single_folder(tmp_path / "d", ["a", "b"], 3)
    _single_folder(root / "more", ["c"], 3, seed=1)  # more/c/*.png: a second level
    with pytest.raises(DataError, match="two different folders"):
        load(str(root), val_size=0)


def test_mixed_sizes_are_resized_to_the_size_asked_for_and_cached_under_it(tmp_path):
    root = _single_folder(tmp_path / "d", ["a", "b"], 5, sizes=((40, 30), (24, 24)))
    with pytest.raises(DataError) as e:
        load(str(root), val_size=0)
    assert "0000.png is 30x40" in _one_line(e) and "0001.png is 24x24" in _one_line(e)
    s = load(str(root), val_size=0, size=(16, 20))
    assert s.x_train.shape[1:] == (16, 20, 3) and s.source["resized"]["from"] == "mixed"
    assert s.source["resized"]["to"] == [16, 20] and s.source["cache"].endswith("-16x20.npz")
    assert load(str(root), val_size=0, size=(16, 20)).source["cache_hit"] is True
    # the resize is Pillow's bilinear of each image (what export and bench both apply)
    from PIL import Image
    one = np.asarray(Image.open(root / "a" / "0000.png").resize((20, 16), Image.BILINEAR))
    assert any(np.array_equal(one, im) for im in np.concatenate([s.x_train, s.x_test]))
    # one size: kept as decoded, whatever size is asked for (the model resizes it later)
    same = _single_folder(tmp_path / "e", ["a", "b"], 5)
    t = load(str(same), val_size=0, size=(16, 20))
    assert t.x_train.shape[1:] == (32, 32, 3) and t.source["resized"] is None
