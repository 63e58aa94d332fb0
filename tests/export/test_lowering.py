"""export/lowering.py: every lowering against the numpy reference, lowered_copy keeps weights and
predictions, and every converted graph holds only builtin (TFLite) / standard (ONNX) ops.

Tiny synthetic models only; the accuracy/latency comparison lives in export/lowering_bench.py."""
from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("tf_keras")

from export.lowering import (DEFAULTS, LOWERINGS, POOL_MAX_ERROR, LoweredTanhExp, LoweredTanhExpPool,  # noqa: E402
                             choose, has_tanhexp, lowered_copy)
from train.activations import TanhExp, tanhexp_numpy  # noqa: E402

L = keras.layers
# one lowering per distinct op structure (the bounded{c}/norm{c}/pool_max{c} rows share theirs)
STRUCTURES = ["naive", "bounded3", "sub3", "sigmoid3", "norm1", "sub1.4_floor4", "elu3", "eluh3", "pool_exact3", "pool_max3",
              "pool_cat_eluh3"]


def _ref_pooled(x: np.ndarray) -> np.ndarray:
    """Reference for act -> MaxPool2D(2): the textbook f, then 2x2 max, NHWC, valid padding."""
    f = tanhexp_numpy(x)
    n, h, w, c = f.shape
    f = f[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)
    return f.max(axis=(2, 4))


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

@pytest.mark.parametrize("name", sorted(LOWERINGS))
def test_elementwise_matches_reference(name):
    low = LOWERINGS[name]
    x = np.concatenate([np.linspace(-30, 30, 60001), [-88.0, -1e-3, 0.0, 1e-3, 50.0]]).astype(np.float32)
    got = low(tf.constant(x)).numpy().astype(np.float64)
    ref = tanhexp_numpy(x)
    tol = (2e-6 + low.max_error) * np.maximum(1.0, np.abs(x))  # + float32 rounding of exp/tanh/mul
    assert np.all(np.abs(got - ref) <= tol), f"{name}: max err {np.max(np.abs(got - ref)):.3g}"
    assert np.all(np.isfinite(got))


@pytest.mark.parametrize("name", [n for n in sorted(LOWERINGS) if LOWERINGS[n].pool != "none"])
def test_pooled_layer_matches_reference(name):
    low = LOWERINGS[name]
    x = np.random.default_rng(0).normal(0, 3, (4, 9, 9, 5)).astype(np.float32)
    x[0] -= 6  # whole windows negative: where pool_max differs
    got = LoweredTanhExpPool(name, (2, 2))(tf.constant(x)).numpy()
    ref = _ref_pooled(x)
    err = np.abs(got - ref)
    if low.exact:
        assert err.max() <= 2e-6 * max(1.0, np.abs(x).max())
    else:
        bound = (low.max_error + 2e-6) * np.maximum(1.0, np.abs(x).max()) + POOL_MAX_ERROR
        assert err.max() <= bound


def test_pool_exact_equals_act_then_pool():
    # quasi-convexity: max over a window of f = max(f(max), f(min)); TF's vectorized exp/tanh may
    # round the same input 1 ulp apart at different tensor positions, hence rtol 1e-6, not ==
    x = np.random.default_rng(3).normal(-0.5, 2, (2, 16, 16, 8)).astype(np.float32)
    direct = L.MaxPooling2D(2)(TanhExp()(tf.constant(x))).numpy()
    fused = LoweredTanhExpPool("pool_exact3", (2, 2))(tf.constant(x)).numpy()
    np.testing.assert_allclose(fused, direct, rtol=1e-6, atol=1e-7)


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
    for name, low in LOWERINGS.items():
        assert low.doc and low.pool in ("none", "max", "exact", "cat")
        assert low.exact == (low.max_error == 0.0 and low.pool != "max"), name


# --- lowered_copy ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", STRUCTURES)
def test_lowered_copy_keeps_weights_and_predictions(name):
    model, x = _tiny(), _images()
    low = lowered_copy(model, name)
    assert has_tanhexp(model) and not has_tanhexp(low)
    for a, b in zip(model.get_weights(), low.get_weights()):
        np.testing.assert_array_equal(a, b)
    dp = np.abs(low(x).numpy() - model(x).numpy()).max()
    if LOWERINGS[name].exact:
        assert dp <= 1e-5, f"{name}: max |dp| {dp:.2e}"
    else:
        assert dp < 0.5
    kinds = [type(lay) for lay in low.layers]
    if LOWERINGS[name].pool == "none":
        assert kinds.count(LoweredTanhExp) == 2 and LoweredTanhExpPool not in kinds
    else:
        assert kinds.count(LoweredTanhExpPool) == 2 and L.MaxPooling2D not in kinds


def test_unfusable_pairs_fall_back_to_elementwise():
    # the activation also feeds a second branch: pooling first would change that branch
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    a = TanhExp(name="a")(L.Conv2D(4, 3)(inp))
    p = L.Flatten()(L.MaxPooling2D(2)(a))
    g = L.GlobalAveragePooling2D()(a)
    b = TanhExp(name="b")(L.Dense(5)(L.Concatenate()([p, g])))  # not followed by a pool at all
    model = keras.Model(inp, L.Dense(3, activation="softmax")(b))
    x = _images()
    for name in ("pool_exact3", "pool_max3"):
        low = lowered_copy(model, name)
        assert [type(lay) for lay in low.layers].count(LoweredTanhExp) == 2
        assert not any(isinstance(lay, LoweredTanhExpPool) for lay in low.layers)
        assert np.abs(low(x).numpy() - model(x).numpy()).max() <= 1e-5


def test_sequential_same_padding_and_relu_models():
    keras.utils.set_random_seed(0)
    seq = keras.Sequential([keras.Input((7, 7, 3)), L.Conv2D(4, 3, padding="same"), TanhExp(),
                            L.MaxPooling2D(2, padding="same"), L.Flatten(), L.Dense(3)])
    x = np.random.default_rng(0).normal(0, 1, (16, 7, 7, 3)).astype(np.float32)
    low = lowered_copy(seq, "pool_exact3")
    assert any(isinstance(lay, LoweredTanhExpPool) for lay in low.layers)
    assert np.abs(low(x).numpy() - seq(x).numpy()).max() <= 1e-5
    relu = _tiny("relu")
    assert not has_tanhexp(relu)
    out = lowered_copy(relu, "pool_max3")
    np.testing.assert_array_equal(out(_images()).numpy(), relu(_images()).numpy())


def test_lowered_model_saves_and_reloads(tmp_path):
    model = lowered_copy(_tiny(), "pool_exact3")
    path = tmp_path / "m.keras"
    model.save(path)
    back = keras.models.load_model(path)
    np.testing.assert_allclose(back(_images()).numpy(), model(_images()).numpy(), atol=1e-7)


# --- converted graphs -----------------------------------------------------------------------

def _all_structures() -> keras.Model:
    """One model with a branch per lowering structure (two conversions instead of sixteen)."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    h = L.Conv2D(4, 3, kernel_initializer=keras.initializers.RandomNormal(0, 1.5))(inp)
    outs = []
    for name in STRUCTURES:
        layer = LoweredTanhExp(name) if LOWERINGS[name].pool == "none" else LoweredTanhExpPool(name, (2, 2))
        outs.append(L.Flatten()(layer(h)))
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
    pytest.importorskip("ai_edge_litert")
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
    tf2onnx = pytest.importorskip("tf2onnx")
    ort = pytest.importorskip("onnxruntime")
    from export.opcheck import onnx_ops, violations
    model = _all_structures()
    spec = [tf.TensorSpec((None, 8, 8, 3), tf.float32, name="x")]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
    assert not violations("onnx", onnx_ops(proto)), onnx_ops(proto)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = _images(4)
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert np.abs(got - model(x).numpy()).max() <= 1e-5
