"""Load any tf_keras image classifier safely, with TanhExp found wherever it is.

A model arrives in one of three shapes of TanhExp:
- the project's `TanhExp` layer (python -m train's models);
- `activation="tanhexp"` on a Conv2D or Dense (the name the project registers);
- a plain function named `tanhexp` in a notebook (`def tanhexp(x): return x * tf.math.tanh(
  tf.math.exp(x))`, `Conv2D(..., activation=tanhexp)`), which Keras saves by its name only.

Files are loaded with `safe_mode=True`, so no code is taken from them: the name `tanhexp`
resolves to this project's function, whatever the notebook's body was, and `check_tanhexp`
then proves the loaded model computes x·tanh(eˣ) where the name stood (against numpy, on the
layers' own inputs). `canonical` rewrites activations-by-name into separate `TanhExp` layers,
so that the lowerings and quantization-aware training (which wrap layers, not activation
functions) treat all three alike. Any other custom object is a one-line error naming it.
"""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np

from export.errors import BadInput, one_line

SUFFIXES = (".keras", ".h5", ".hdf5")
# Keras's messages for a name it cannot resolve: "Unknown activation function: 'swish2'",
# "Unknown layer: 'MyLayer'", "Could not locate function 'f'", "Could not locate class 'C'".
_UNKNOWN = re.compile(r"(?:Unknown ([a-z ]+?)(?: function)?: '?([\w.>:-]+)'?|Could not locate (\w+) '([\w.>:-]+)')")


def describe_unknown(message: str) -> str | None:
    m = _UNKNOWN.search(message)
    if not m:
        return None
    kind, name = (m.group(1), m.group(2)) if m.group(2) else (m.group(3), m.group(4))
    return f"{kind.strip()} {name!r}"


def check_file(path: Path) -> str:
    """The model file's kind ("keras", "h5", "savedmodel"), or a one-line BadInput."""
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return "savedmodel"
        raise BadInput(f"{path}: a folder without saved_model.pb; want a .keras or .h5 file or a SavedModel folder")
    if not path.is_file():
        raise BadInput(f"model not found: {path}")
    if path.suffix.lower() not in SUFFIXES:
        raise BadInput(f"{path}: unsupported model file; want .keras, .h5 or a SavedModel folder")
    if path.suffix.lower() == ".keras":
        try:
            with zipfile.ZipFile(path) as z:
                missing = {"config.json", "model.weights.h5"} - set(z.namelist())
                if missing:
                    raise BadInput(f"{path}: not a Keras model file (missing {', '.join(sorted(missing))})")
                bad = z.testzip()  # CRC of every member: truncation and bit rot show up here
                if bad:
                    raise BadInput(f"{path}: corrupt (member {bad} fails its CRC check)")
                json.loads(z.read("config.json"))
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise BadInput(f"{path}: corrupt or not a Keras model file ({one_line(e)})") from None
        return "keras"
    with open(path, "rb") as f:
        if f.read(8) != b"\x89HDF\r\n\x1a\n":
            raise BadInput(f"{path}: not an HDF5 file (a .h5 model starts with the HDF5 signature)")
    return "h5"


def load_model(path: str | Path):
    """The model in `path`, TanhExp canonical and checked. Raises BadInput with one line."""
    import tf_keras as keras

    from train.activations import custom_objects
    path = Path(path)
    kind = check_file(path)
    try:
        if kind == "h5":
            model = _load_h5(path)
        else:
            model = keras.models.load_model(path, custom_objects=custom_objects(), safe_mode=True, compile=False)
    except BadInput:
        raise
    except Exception as e:  # Keras raises ValueError, OSError, TypeError, h5py errors ...
        # The saved config names what is unknown; Keras's message is read only where there is
        # no config to read (a SavedModel), since it also says "Could not locate" of broken files.
        config = _saved_config(path, kind)
        what = unknown_object(config) if config is not None else describe_unknown(str(e))
        if what:
            raise BadInput(f"{path}: unknown custom object {what}; this tool rebuilds TanhExp (a layer, "
                           f"activation='tanhexp' or a function named tanhexp) and Keras's own objects only") from None
        raise BadInput(f"{path}: cannot load the Keras model ({one_line(e)})") from None
    if not isinstance(model, keras.Model) or not hasattr(model, "layers"):
        raise BadInput(f"{path}: loads as {type(model).__name__}, not a Keras model (save it with model.save)")
    model = canonical(model)
    check_tanhexp(model, path)
    return model


def _saved_config(path: Path, kind: str) -> dict | None:
    try:
        if kind == "keras":
            with zipfile.ZipFile(path) as z:
                return json.loads(z.read("config.json"))
        if kind == "h5":
            import h5py
            with h5py.File(path, "r") as f:
                raw = f.attrs.get("model_config")
            return json.loads(raw if isinstance(raw, str) else raw.decode()) if raw is not None else None
    except Exception:  # the loader's own error is reported instead
        return None
    return None


def unknown_object(config) -> str | None:
    """The first layer class or activation name in a saved config that neither Keras nor this
    project defines, as "layer 'X'" / "activation 'f'"; None if all are known."""
    import tf_keras as keras

    from train.activations import custom_objects
    known = custom_objects()
    found = []

    def walk(obj, key=None):
        if isinstance(obj, dict):
            if key == "activation" and obj.get("class_name") == "function":
                obj = obj.get("config")
            else:
                cn = obj.get("class_name")
                if key == "layers" or (isinstance(obj.get("config"), dict) and "inbound_nodes" in obj):
                    if isinstance(cn, str) and cn not in known and not hasattr(keras.layers, cn) \
                            and cn not in ("Functional", "Sequential", "Model"):
                        found.append(f"layer {cn!r}")
                for k, v in obj.items():
                    walk(v, "layers" if k == "layers" and isinstance(v, list) else k)
                return
        if isinstance(obj, list):
            for v in obj:
                walk(v, key)
        elif key == "activation" and isinstance(obj, str) and obj not in known \
                and not hasattr(keras.activations, obj.split(">")[-1]):
            found.append(f"activation {obj!r}")
    walk(config)
    return found[0] if found else None


def _load_h5(path: Path):
    """An HDF5 model without its code: tf_keras's HDF5 loader has no safe mode (a Lambda layer's
    Python bytecode would run), so the config is read here, refused if it holds code, and the
    model rebuilt from it with the weights loaded by layer."""
    import h5py
    import tf_keras as keras

    from train.activations import custom_objects
    with h5py.File(path, "r") as f:
        raw = f.attrs.get("model_config")
    if raw is None:
        raise BadInput(f"{path}: holds weights only, no model config (save it with model.save)")
    config = _function_names(json.loads(raw if isinstance(raw, str) else raw.decode()))
    code = _classes(config) & {"Lambda"}
    if code:
        raise BadInput(f"{path}: a Lambda layer holds Python code, which is not loaded from files; "
                       "rebuild it as a registered layer or activation")
    model = keras.models.model_from_json(json.dumps(config), custom_objects=custom_objects())
    model.load_weights(path)
    return model


def _function_names(obj):
    """{"class_name": "function", "config": NAME, ...} (how tf_keras saves a plain function) -> NAME,
    which the HDF5 loader resolves through custom_objects like any activation name."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "function" and isinstance(obj.get("config"), str):
            return obj["config"]
        return {k: _function_names(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_function_names(v) for v in obj]
    return obj


def _classes(obj) -> set:
    if isinstance(obj, dict):
        return ({obj["class_name"]} if isinstance(obj.get("class_name"), str) else set()).union(
            *(_classes(v) for v in obj.values()))
    if isinstance(obj, list):
        return set().union(*(_classes(v) for v in obj))
    return set()


def _uses_tanhexp(layer) -> bool:
    from train.activations import tanhexp
    return getattr(layer, "activation", None) is tanhexp


def canonical(model):
    """`model` with every activation-by-name tanhexp split off into a TanhExp layer after its
    layer (same weights); the model itself when there is none. Works on the config, so Sequential
    and functional graphs (shared layers too) are rewritten alike."""
    import tf_keras as keras

    from train.activations import custom_objects
    names = {layer.name for layer in model.layers if _uses_tanhexp(layer)}
    nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)
              and any(_uses_tanhexp(sub) for sub in layer.layers)]
    if nested:
        raise BadInput(f"tanhexp as an activation inside the nested model {nested[0]!r} is not supported; "
                       "flatten the model or use the TanhExp layer")
    if not names:
        return model
    config = model.get_config()
    if isinstance(model, keras.Sequential):
        layers = []
        for lc in config["layers"]:
            layers.append(lc)
            if lc["config"].get("name") in names:
                lc["config"]["activation"] = "linear"
                layers.append({"class_name": "TanhExp", "config": {"name": f"{lc['config']['name']}_tanhexp",
                                                                   "dtype": lc["config"].get("dtype", "float32")}})
        config["layers"] = layers
        new = keras.Sequential.from_config(config, custom_objects=custom_objects())
    else:
        new = keras.Model.from_config(_split_functional(config, names), custom_objects=custom_objects())
    weights = {layer.name: layer.get_weights() for layer in model.layers}
    for layer in new.layers:
        if layer.name in weights:
            layer.set_weights(weights[layer.name])
    return new


def _split_functional(config: dict, names: set) -> dict:
    """A functional config whose layers in `names` feed a new TanhExp layer each; every use of
    their outputs (other layers' inbound nodes, the model outputs) reads the TanhExp's instead."""
    def rename(ref):
        return [f"{ref[0]}_tanhexp", *ref[1:]] if ref[0] in names else ref

    layers = []
    for lc in config["layers"]:
        for node in lc.get("inbound_nodes", []):
            node[:] = [rename(ref) for ref in node]
        layers.append(lc)
        if lc["name"] in names:
            lc["config"]["activation"] = "linear"
            calls = len(lc.get("inbound_nodes", [])) or 1
            layers.append({"class_name": "TanhExp", "name": f"{lc['name']}_tanhexp",
                           "config": {"name": f"{lc['name']}_tanhexp", "dtype": lc["config"].get("dtype", "float32")},
                           "inbound_nodes": [[[lc["name"], k, 0, {}]] for k in range(calls)]})
    config["layers"] = layers
    config["output_layers"] = [rename(ref) for ref in config["output_layers"]]
    return config


def check_tanhexp(model, path: Path, tol: float = 1e-5) -> None:
    """Every TanhExp layer computes x·tanh(eˣ) on its own inputs: fed a probe batch, the layer's
    output against numpy's float64 formula (TanhExp's exponent bound changes nothing in float32)."""
    import tensorflow as tf
    import tf_keras as keras

    from export.lowering import has_tanhexp
    from train.activations import TanhExp, tanhexp_numpy
    if not has_tanhexp(model):
        return
    if any(d is None for d in model.input_shape[1:]):
        return  # dynamic dims: the layers' own check below needs a shape; the function is ours
    probe = np.random.default_rng(0).normal(0, 2, (2, *model.input_shape[1:])).astype(np.float32)
    acts = [layer for layer in model.layers if isinstance(layer, TanhExp)]
    tap = keras.Model(model.inputs, [layer.input for layer in acts] + [layer.output for layer in acts])
    got = tap(tf.constant(probe), training=False)
    got = got if isinstance(got, (list, tuple)) else [got]
    for layer, x, y in zip(acts, got[:len(acts)], got[len(acts):]):
        err = float(np.max(np.abs(y.numpy() - tanhexp_numpy(x.numpy())))) if np.size(x) else 0.0
        if not err <= tol * max(1.0, float(np.max(np.abs(x.numpy())))):
            raise BadInput(f"{path}: layer {layer.name!r} does not compute x*tanh(exp(x)) (max error {err:.3g})")
