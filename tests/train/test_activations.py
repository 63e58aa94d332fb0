import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from train.activations import TanhExp, tanhexp, tanhexp_fused, tanhexp_numpy

FORMS = pytest.mark.parametrize("fn", [tanhexp, tanhexp_fused], ids=["ops", "fused"])
from train.models import build


@FORMS
def test_matches_numpy_reference_to_float32_precision(fn):
    x = np.linspace(-20, 20, 200_001, dtype=np.float32)
    got = fn(tf.constant(x)).numpy().astype(np.float64)
    ref = tanhexp_numpy(x)
    rel = np.abs(got - ref) / np.maximum(np.abs(ref), np.finfo(np.float32).tiny)
    assert rel.max() <= 1e-6, (rel.max(), x[rel.argmax()])


@FORMS
@pytest.mark.parametrize("dtype", [tf.float32, tf.float16])
def test_gradients_finite_on_wide_range(fn, dtype):
    x = tf.constant(np.linspace(-1000, 1000, 40_001), dtype=dtype)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    g = tape.gradient(y, x).numpy()
    assert np.isfinite(y.numpy()).all() and np.isfinite(g).all()
    # Far right the function is x, far left it is ~0: the gradient says so too.
    assert g[-1] == pytest.approx(1.0) and abs(float(g[0])) < 1e-3


@FORMS
def test_gradient_matches_numpy_derivative(fn):
    x = np.linspace(-6, 2.9, 1001)
    xt = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = fn(xt)
    g = tape.gradient(y, xt).numpy()
    e = np.exp(x)
    ref = np.tanh(e) + x * e / np.cosh(e) ** 2
    np.testing.assert_allclose(g, ref, rtol=1e-4, atol=1e-6)


def test_layer_under_mixed_precision_has_finite_gradients():
    layer = TanhExp(dtype="mixed_float16")
    x = tf.constant(np.linspace(-100, 100, 1001), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.cast(layer(x), tf.float32)
    assert layer.compute_dtype == "float16"
    assert np.isfinite(tape.gradient(y, x).numpy()).all()


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_layer_under_mixed_precision_matches_numpy_to_its_precision(policy):
    # The fused kernels compute in float32 whatever the compute dtype (XLA's CPU bfloat16
    # exp/tanh are slow), so the only error is the rounding of input and output.
    layer = TanhExp(dtype=policy)
    x = np.linspace(-8, 8, 2001)
    eps = {"mixed_float16": 2.0 ** -10, "mixed_bfloat16": 2.0 ** -7}[policy]
    xt = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt)
        y32 = tf.cast(y, tf.float32)
    assert y.dtype == layer.compute_dtype
    xr = tf.cast(tf.cast(xt, layer.compute_dtype), tf.float64).numpy()  # the input as the layer sees it
    ref = tanhexp_numpy(xr)
    np.testing.assert_allclose(tf.cast(y, tf.float64).numpy(), ref, rtol=eps, atol=eps * 1e-2)
    g = tape.gradient(y32, xt).numpy()
    e = np.exp(np.minimum(xr, 3.0))
    gref = np.tanh(e) + np.where(xr < 3, xr * e / np.cosh(e) ** 2, 0)
    np.testing.assert_allclose(g, gref, rtol=4 * eps, atol=4 * eps)


@pytest.mark.parametrize("act", ["relu", "tanhexp"])
def test_saved_model_reloads_safely_and_predicts_identically(tmp_path, act):
    m = build("seed", act)
    x = np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32)
    m.save(tmp_path / "m.keras")
    m2 = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_array_equal(m.predict(x, verbose=0), m2.predict(x, verbose=0))


def test_activation_name_is_registered():
    from train.activations import register_activation_name
    register_activation_name()
    for name in ("tanhexp", "edgecnn>tanhexp"):
        assert keras.layers.Dense(3, activation=name).activation is tanhexp
