"""python -m export --model: models people bring, saved the way a notebook saves them.

The notebook models are built and saved in a child interpreter whose `tanhexp` is a plain
function of its own __main__ (as in the seed post), so nothing of this project's is in the file."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from runtime.fileio import sha256_file

NOTEBOOK = textwrap.dedent('''
    import sys
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras
    from tf_keras import layers

    def tanhexp(x):
        return x * tf.math.tanh(tf.math.exp(x))

    def swish2(x):
        return x * tf.math.sigmoid(x)

    out, size = sys.argv[1], int(sys.argv[2])
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        layers.Conv2D(8, (3, 3), activation=tanhexp, input_shape=(size, size, 3)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(8, (3, 3), activation=tanhexp),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(1).integers(0, 256, (200, size, size, 3)).astype("float32")
    model.fit(x / 255.0, np.arange(200) % 10, batch_size=50, epochs=1, verbose=0)
    model.save(f"{out}/seed.keras")
    model.save(f"{out}/seed.h5")
    np.save(f"{out}/probe.npy", x[:8] / 255.0)
    np.save(f"{out}/probe_out.npy", model.predict(x[:8] / 255.0, verbose=0))
    other = keras.Sequential([layers.Conv2D(4, 3, activation=swish2, input_shape=(size, size, 3)),
                              layers.Flatten(), layers.Dense(10, activation="softmax")])
    other.save(f"{out}/swish2.keras")
    logits = keras.Sequential([layers.Conv2D(8, 3, activation=tanhexp, input_shape=(size, size, 3)),
                               layers.MaxPooling2D(4), layers.Flatten(), layers.Dense(10)])
    logits.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    logits.fit(x / 255.0, np.arange(200) % 10, batch_size=50, epochs=1, verbose=0)
    logits.save(f"{out}/logits.keras")
''')


def _notebook(folder, size=32):
    folder.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([sys.executable, "-c", NOTEBOOK, str(folder), str(size)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return folder


@pytest.fixture(scope="module")
def notebook(tmp_path_factory, export_env):
    return _notebook(tmp_path_factory.mktemp("notebook"))


@pytest.mark.parametrize("name", ["seed.keras", "seed.h5"])
def test_notebook_model_reloads_as_the_notebook_computed_it(notebook, name):
    from export.loader import load_model
    from train.activations import TanhExp
    model = load_model(notebook / name)
    assert [type(layer).__name__ for layer in model.layers].count("TanhExp") == 2
    assert all(isinstance(model.layers[i], TanhExp) for i in (1, 4))  # right after each conv
    got = model.predict(np.load(notebook / "probe.npy"), verbose=0)
    np.testing.assert_allclose(got, np.load(notebook / "probe_out.npy"), atol=1e-6)


def test_notebook_model_exports_with_tanhexp_lowered(notebook, data_dir, tmp_path):
    from export.api import export
    from export.config import ExportConfig
    m = export(ExportConfig(format="tflite", quant=["float32", "int8"], model=str(notebook / "seed.h5"),
                            data=str(data_dir), out=str(tmp_path / "b"), calib_size=50), log=lambda s: None)
    src = m["source_run"]
    assert src["model_file"].endswith("seed.h5") and src["model_sha256"] == sha256_file(notebook / "seed.h5")
    arts = {a["mode"]: a for a in m["artifacts"]}
    assert arts["float32"]["lowering"] and arts["int8"]["lowering"]  # TanhExp found and lowered
    assert arts["float32"]["parity"]["max_abs_diff"] <= 2e-5
    assert not {"CUSTOM", "FlexExp"} & set(arts["int8"]["ops"])
    # default: the notebook's pixels / 255
    assert m["input"]["normalization"]["offset"] == 0.0 and "resized" not in m["input"]


def test_unknown_custom_activation_is_one_line_naming_it(notebook, data_dir, tmp_path):
    r = subprocess.run([sys.executable, "-m", "export", "--format", "onnx", "--model", str(notebook / "swish2.keras"),
                        "--data", str(data_dir), "--out", str(tmp_path / "b")], capture_output=True, text=True,
                       timeout=300)
    errors = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and r.stderr.strip().endswith(errors[0]), r.stderr
    assert "unknown custom object activation 'swish2'" in errors[0]
    assert not (tmp_path / "b").exists()


def test_other_input_size_from_an_image_folder_of_another_size(tmp_path, export_env):
    """A 40x40 image folder, a 24x24 model: resized on the way in, said in the manifest; the bundle's
    test images are the resized ones, which the runtime reads back as they are."""
    from tests.conftest import tiny_arrays, write_imagefolder
    from PIL import Image

    xtr, ytr, xte, yte = tiny_arrays(100, 30)
    up = [np.stack([np.asarray(Image.fromarray(i).resize((40, 40))) for i in x]) for x in (xtr, xte)]
    folder = write_imagefolder(tmp_path / "imgs", (up[0], ytr, up[1], yte))
    nb = _notebook(tmp_path / "nb24", size=24)
    from export.api import export
    from export.config import ExportConfig
    m = export(ExportConfig(format="onnx", quant=["float32"], model=str(nb / "seed.keras"), data=str(folder),
                            out=str(tmp_path / "b")), log=lambda s: None)
    assert m["input"]["resized"]["from"] == [40, 40] and m["input"]["resized"]["to"] == [24, 24]
    assert m["input"]["shape"] == [24, 24, 3]
    with np.load(tmp_path / "b" / "test.npz") as z:
        assert z["x"].shape == (30, 24, 24, 3)
    from runtime.bench import main as bench
    assert bench(["--bundle", str(tmp_path / "b"), "--in-process", "--runs", "3", "--json", str(tmp_path / "r.json"),
                  "--no-progress"]) == 0
    row = json.loads((tmp_path / "r.json").read_text())["rows"][0]
    assert row["accuracy"] == pytest.approx(m["artifacts"][0]["parity"]["test_accuracy"], abs=1e-6)


def test_mean_std_normalization_round_trips_to_the_runtime(notebook, data_dir, tmp_path):
    from export.api import export
    from export.config import ExportConfig
    from runtime.bundle import load_bundle
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    m = export(ExportConfig(format="tflite", quant=["float32"], model=str(notebook / "seed.keras"), data=str(data_dir),
                            out=str(tmp_path / "b"), mean=mean, std=std), log=lambda s: None)
    norm = m["input"]["normalization"]
    np.testing.assert_allclose(norm["scale"], [1 / (255 * s) for s in std])
    np.testing.assert_allclose(norm["offset"], [-a / s for a, s in zip(mean, std)])
    inputs = load_bundle(tmp_path / "b")
    assert [list(v) for v in inputs.normalization] == [norm["scale"], norm["offset"]]
    # the runtime feeds (pixel / 255 - mean) / std: its probabilities are Keras's on that input
    from export.loader import load_model
    from runtime.backends import get_backend
    with np.load(tmp_path / "b" / "test.npz") as z:
        x = z["x"][:20]
    want = load_model(notebook / "seed.keras").predict(((x / 255.0 - mean) / std).astype(np.float32), verbose=0)
    be = get_backend("tflite").load(tmp_path / "b" / "float32.tflite", normalization=inputs.normalization)
    np.testing.assert_allclose(be.run(x), want, atol=2e-5)
    assert m["artifacts"][0]["parity"]["max_abs_diff"] <= 2e-5


@pytest.mark.parametrize("args,needle", [
    (["--run", "r", "--model", "m.keras"], "--run or --model"),
    (["--data", "x"], "--data goes with --model"),
    (["--model", "m.keras", "--mean", "0.5,0.5,0.5"], "--mean and --std go together"),
    (["--model", "m.keras", "--mean", "0.5", "--std", "0"], "std > 0"),
    (["--model", "m.keras", "--mean", "0.5", "--std", "0.2", "--input-scale", "2"], "not both"),
    (["--model", "{d}/nope.keras"], "model not found"),
    (["--model", "{d}/probe.npy"], "unsupported model file"),
])
def test_bad_model_options_are_one_line(args, needle, notebook, tmp_path):
    args = [a.replace("{d}", str(notebook)) for a in args]
    r = subprocess.run([sys.executable, "-m", "export", "--format", "tflite", *args, "--out", str(tmp_path / "b")],
                       capture_output=True, text=True, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], r.stderr


def _softmax64(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_logits_model_is_compared_as_probabilities_by_export_and_device(notebook, data_dir, tmp_path):
    from export.api import export
    from export.config import ExportConfig
    from export.loader import load_model
    m = export(ExportConfig(format="onnx", quant=["float32", "int8"], model=str(notebook / "logits.keras"),
                            data=str(data_dir), out=str(tmp_path / "b"), calib_size=50), log=lambda s: None)
    assert m["outputs"] == "logits"
    arts = {a["mode"]: a for a in m["artifacts"]}
    assert arts["float32"]["parity"]["max_abs_diff"] <= 2e-5
    with np.load(tmp_path / "b" / "test.npz") as z, np.load(tmp_path / "b" / "reference.npz") as r:
        x, ref = z["x"], r["probs"]
    keras_logits = load_model(notebook / "logits.keras").predict(x / np.float32(255), verbose=0)
    assert np.abs(keras_logits.sum(1) - 1).max() > 0.1  # really logits, not probabilities
    np.testing.assert_allclose(ref, _softmax64(keras_logits.astype(np.float64)), atol=1e-6)
    # the device applies the same softmax: the bench's |dp| against the reference is probabilities'
    from runtime.bench import main as bench
    assert bench(["--bundle", str(tmp_path / "b"), "--in-process", "--runs", "3", "--json", str(tmp_path / "r.json"),
                  "--no-progress"]) == 0
    rows = {r["mode"]: r for r in json.loads((tmp_path / "r.json").read_text())["rows"]}
    assert rows["float32"]["max_abs_diff_ref"] <= 2e-5
    for mode in ("float32", "int8"):
        assert rows[mode]["accuracy"] == pytest.approx(arts[mode]["parity"]["test_accuracy"], abs=1e-6)


def test_single_folder_of_mixed_sizes_and_own_classes_holds_out_the_same_images_in_bench(tmp_path, export_env):
    """One folder <class>/*, ten classes of its own names, images of two sizes: the export resizes
    them to the model's 24x24 as it reads them and records the seeded split; runtime.bench --data
    on the same folder holds out the same images and scores the exported file the same."""
    from PIL import Image
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    for k in range(10):
        (folder / f"kind{k:02d}").mkdir(parents=True)
        for i in range(12):
            h, w = ((40, 30), (28, 36))[i % 2]
            img = np.clip(rng.normal(25 * k, 30, (h, w, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(folder / f"kind{k:02d}" / f"{i:03d}.png")
    nb = _notebook(tmp_path / "nb24", size=24)
    from export.api import export
    from export.config import ExportConfig
    m = export(ExportConfig(format="onnx", quant=["float32"], model=str(nb / "seed.keras"), data=str(folder),
                            out=str(tmp_path / "b")), log=lambda s: None)
    assert m["classes"] == [f"kind{k:02d}" for k in range(10)]
    assert m["input"]["resized"]["from"] == "mixed" and m["input"]["resized"]["to"] == [24, 24]
    split = m["source_run"]["test_split"]
    assert split["layout"] == "single" and split["seed"] == 0 and split["test_images"] == 20
    parity = m["artifacts"][0]["parity"]
    from runtime.bench import main as bench
    assert bench(["--model", str(tmp_path / "b" / "float32.onnx"), "--data", str(folder), "--in-process", "--runs", "3",
                  "--json", str(tmp_path / "r.json"), "--no-progress"]) == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["data"]["classes"] == m["classes"] and doc["data"]["folder_split"] == split
    assert doc["rows"][0]["count"] == parity["count"] == 20
    assert doc["rows"][0]["accuracy"] == pytest.approx(parity["test_accuracy"], abs=1e-6)
