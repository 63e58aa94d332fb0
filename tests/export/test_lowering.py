"""export/lowering.py: the shipped lowerings against the numpy reference, lowered_copy keeps weights
and predictions, and every converted graph holds only builtin (TFLite) / standard (ONNX) ops.

Tiny synthetic models only. The measured candidates are tested in
tests/experiments/test_lowering_candidates.py."""
from __future__ import annotations

import numpy as np
import pytest

import tensorflow as tf
import tf_keras as keras

from export.lowering import DEFAULTS, LOWERINGS, LoweredTanhExp, choose, has_tanhexp, lowered_copy
from train.activations import TanhExp, tanhexp_numpy

L = keras.layers
# what the exporter ships (experiments may register more into LOWERINGS)
SHIPPED = ["naive", "bounded3", "elu3", "lrsgate", "lrsgate_fit"]
STRUCTURES = SHIPPED


def _tiny(act="tanhexp", size=8, seed=0):
    """conv -> act -> pool -> conv -> act -> pool -> dense, like the seed net but 8x8 inputs."""
    keras.utils.set_random_seed(seed)
    make = (lambda name: TanhExp(name=name)) if act == "tanhexp" else (lambda name: L.ReLU(name=name))
    x = inp = keras.Input((size, size, 3))
    x = L.Conv2D(4, 3, name="c1", kernel_initializer=keras.initializers.RandomNormal(0, 1.5))(x)
    x = L.MaxPooling2D(2, name="p1")(make("a1")(x))
    x = L.Conv2D(6, 2, padding="same", name="c2", kernel_initializer=keras.initializers.RandomNormal(0, 1.5))(x)
    x = L.MaxPooling2D(2, name="p2")(make("a2")(x))
    out = L.Dense(10, activation="softmax", name="d")(L.Flatten()(x))
    return keras.Model(inp, out)


def _images(n=64, size=8, seed=1):
    return np.random.default_rng(seed).random((n, size, size, 3), dtype=np.float32)


# --- formulas -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SHIPPED)
def test_elementwise_matches_reference(name):
    low = LOWERINGS[name]
    x = np.concatenate([np.linspace(-30, 30, 60001), [-88.0, -1e-3, 0.0, 1e-3, 50.0]]).astype(np.float32)
    got = low(tf.constant(x)).numpy().astype(np.float64)
    ref = tanhexp_numpy(x)
    tol = (2e-6 + low.max_error) * np.maximum(1.0, np.abs(x))  # + float32 rounding of exp/tanh/mul
    assert np.all(np.abs(got - ref) <= tol), f"{name}: max err {np.max(np.abs(got - ref)):.3g}"
    assert np.all(np.isfinite(got))


def test_registry_and_defaults():
    for mode in ("float32", "float16", "dynamic"):
        for fmt in (None, "tflite", "onnx"):
            assert LOWERINGS[choose(mode, fmt)].exact, f"{fmt}/{mode} must export the training function"
    assert choose("float32", "onnx") == "naive" and choose("float32", "tflite") == DEFAULTS["float32"]
    for mode, name in DEFAULTS.items():
        assert name in LOWERINGS
    with pytest.raises(ValueError):
        choose("int4")
    with pytest.raises(ValueError):
        lowered_copy(_tiny(), "no-such-lowering")
    assert set(SHIPPED) <= set(LOWERINGS) and set(DEFAULTS.values()) | {"naive"} <= set(SHIPPED)
    for name in SHIPPED:
        low = LOWERINGS[name]
        assert low.doc and low.exact == (low.max_error == 0.0), name
    assert not LOWERINGS["elu3"].exact and 0.02 < LOWERINGS["elu3"].max_error < 0.03  # documented bound


# --- lowered_copy ---------------------------------------------------------------------------

def check_copy(name, lowered_copy=lowered_copy):
    """lowered_copy(tiny model, name): same weights, no TanhExp left, the same predictions (exact
    lowerings to 1e-5); returns the copy's layer types."""
    model, x = _tiny(), _images()
    low = lowered_copy(model, name)
    assert has_tanhexp(model) and not has_tanhexp(low)
    for a, b in zip(model.get_weights(), low.get_weights()):
        np.testing.assert_array_equal(a, b)
    dp = np.abs(low(x).numpy() - model(x).numpy()).max()
    assert dp <= 1e-5 if LOWERINGS[name].exact else dp < 0.5, f"{name}: max |dp| {dp:.2e}"
    return [type(lay) for lay in low.layers]


@pytest.mark.parametrize("name", STRUCTURES)
def test_lowered_copy_keeps_weights_and_predictions(name):
    kinds = check_copy(name)
    assert kinds.count(LoweredTanhExp) == 2


def test_sequential_and_relu_models():
    keras.utils.set_random_seed(0)
    seq = keras.Sequential([keras.Input((7, 7, 3)), L.Conv2D(4, 3, padding="same"), TanhExp(),
                            L.MaxPooling2D(2, padding="same"), L.Flatten(), L.Dense(3)])
    x = np.random.default_rng(0).normal(0, 1, (16, 7, 7, 3)).astype(np.float32)
    low = lowered_copy(seq, "bounded3")
    assert any(isinstance(lay, LoweredTanhExp) for lay in low.layers)
    assert np.abs(low(x).numpy() - seq(x).numpy()).max() <= 1e-5
    relu = _tiny("relu")
    assert not has_tanhexp(relu)
    out = lowered_copy(relu, "elu3")
    np.testing.assert_array_equal(out(_images()).numpy(), relu(_images()).numpy())


def test_lowered_model_saves_and_reloads(tmp_path):
    model = lowered_copy(_tiny(), "elu3")
    path = tmp_path / "m.keras"
    model.save(path)
    back = keras.models.load_model(path)
    np.testing.assert_allclose(back(_images()).numpy(), model(_images()).numpy(), atol=1e-7)


# --- converted graphs -----------------------------------------------------------------------

def _all_structures() -> keras.Model:
    """One model with a branch per lowering (two conversions instead of six)."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    h = L.Conv2D(4, 3, kernel_initializer=keras.initializers.RandomNormal(0, 1.5))(inp)
    outs = []
    for name in STRUCTURES:
        outs.append(L.Flatten()(L.MaxPooling2D(2)(LoweredTanhExp(name)(h))))
    return keras.Model(inp, L.Dense(10, activation="softmax")(L.Concatenate()(outs)))


def _tflite(model, int8: bool) -> bytes:
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        calib = _images(8)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


@pytest.mark.parametrize("int8", [False, True], ids=["float32", "int8"])
def test_tflite_builtin_ops_only_and_float_exact(int8):
    from export.opcheck import tflite_ops, violations
    from ai_edge_litert.interpreter import Interpreter
    model = _all_structures()
    buf = _tflite(model, int8)
    ops = tflite_ops(buf)
    assert not violations("tflite", ops) and not any(o.startswith("Flex") for o in ops), ops
    assert {"EXP", "TANH", "MUL", "MAX_POOL_2D"} <= set(ops)
    if not int8:
        x = _images(1)
        it = Interpreter(model_content=buf)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        got = it.get_tensor(it.get_output_details()[0]["index"])
        assert np.abs(got - model(x).numpy()).max() <= 1e-5


def test_onnx_standard_ops_only():
    import tf2onnx
    import onnxruntime as ort
    from export.opcheck import onnx_ops, violations
    model = _all_structures()
    spec = [tf.TensorSpec((None, 8, 8, 3), tf.float32, name="x")]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
    assert not violations("onnx", onnx_ops(proto)), onnx_ops(proto)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = _images(4)
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert np.abs(got - model(x).numpy()).max() <= 1e-5


# --- fitted constants -----------------------------------------------------------------------

def test_gate_fit_recovers_known_constants_and_beats_the_shipped_ones():
    """The numpy Levenberg-Marquardt fit against an lrsgate of known constants (it must find
    them), and against TanhExp on inputs unlike the seed net's (it must do better than the seed's)."""
    from export.gate_fit import fit_lrsgate, lrsgate64, tanhexp64
    from export.lowering import LRSGATE
    x = np.random.default_rng(0).normal(-1.0, 2.5, 20_000)
    true = (1.7, 0.3, -0.2, 0.4)
    p, rms = fit_lrsgate(x, LRSGATE, iters=2000, target=lambda v: lrsgate64(true, v))
    np.testing.assert_allclose(p, true, atol=2e-3)
    p, rms = fit_lrsgate(x, LRSGATE)
    shipped = np.sqrt(np.mean((lrsgate64(LRSGATE, x) - tanhexp64(x)) ** 2))
    assert rms < 0.9 * shipped
    # independent check of the reported error: numpy's x * tanh(e^x) directly
    assert rms == pytest.approx(np.sqrt(np.mean((lrsgate64(p, x) - x * np.tanh(np.exp(x))) ** 2)), rel=1e-6)


def test_fitted_lowering_gives_each_layer_its_constants():
    from export.lowering import fit_params
    model = _tiny()
    x = np.random.default_rng(1).uniform(0, 1, (16, *model.input_shape[1:])).astype(np.float32)
    fits = fit_params(model, "lrsgate_fit", x)
    names = [layer.name for layer in model.layers if isinstance(layer, TanhExp)]
    assert sorted(fits) == sorted(names) and all(len(f["params"]) == 4 for f in fits.values())
    low = lowered_copy(model, "lrsgate_fit", params={k: v["params"] for k, v in fits.items()})
    lowered = [layer for layer in low.layers if isinstance(layer, LoweredTanhExp)]
    assert [layer.params for layer in lowered] == [fits[n]["params"] for n in names]
    # each layer computes x * sigmoid(a * leaky_relu(x - t, alpha) + b) with its own constants
    from export.gate_fit import lrsgate64
    for layer in lowered:
        v = np.linspace(-6, 4, 101, dtype=np.float32)[None, :]
        np.testing.assert_allclose(layer(v).numpy(), lrsgate64(layer.params, v.astype(np.float64)), atol=2e-6)
    assert fit_params(model, "lrsgate", x) == {}  # fixed constants: nothing to fit
