"""experiments/lowering_candidates.py: every measured candidate against the numpy reference, the
pooled fusions (exact ones equal act-then-pool, fallback to elementwise where a pair cannot be
fused), and their graphs hold builtin / standard ops only."""
from __future__ import annotations

import numpy as np
import pytest

import tensorflow as tf
import tf_keras as keras

from experiments.lowering_candidates import (CANDIDATES, POOL_MAX_ERROR, TABLE_CANDIDATES, LoweredTanhExpPool,
                                             lowered_copy, pool_of, register)
from export.lowering import LOWERINGS, LoweredTanhExp
from tests.export.test_lowering import _images, _tflite, _tiny, check_copy
from train.activations import TanhExp, tanhexp_numpy

L = keras.layers
POOLED = [n for n, (pool, _, _) in CANDIDATES.items() if pool != "none"]
# one candidate per distinct op structure (the bounded{c}/norm{c}/pool_max{c} rows share theirs)
STRUCTURES = ["sub3", "sigmoid3", "norm1", "sub1.4_floor4", "eluh3", "pool_exact3", "pool_max3", "pool_cat_eluh3"]


@pytest.fixture(autouse=True, scope="module")
def _registered():
    register()


def _ref_pooled(x: np.ndarray) -> np.ndarray:
    """Reference for act -> MaxPool2D(2): the textbook f, then 2x2 max, NHWC, valid padding."""
    f = tanhexp_numpy(x)
    n, h, w, c = f.shape
    f = f[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)
    return f.max(axis=(2, 4))


def test_register_is_explicit_and_idempotent():
    n = len(LOWERINGS)
    register()
    assert len(LOWERINGS) == n and set(CANDIDATES) | set(TABLE_CANDIDATES) <= set(LOWERINGS)
    assert all(LOWERINGS[name].onnx_int8 == "table" and not LOWERINGS[name].exact for name in TABLE_CANDIDATES)
    for name, (pool, doc, _) in CANDIDATES.items():
        low = LOWERINGS[name]
        assert low.doc == doc and pool_of(name) == pool
        assert low.exact == (low.max_error == 0.0 and pool != "max"), name


@pytest.mark.parametrize("name", sorted(CANDIDATES) + sorted(TABLE_CANDIDATES))
def test_elementwise_part_matches_reference(name):
    low = LOWERINGS[name]
    x = np.concatenate([np.linspace(-30, 30, 60001), [-88.0, -1e-3, 0.0, 1e-3, 50.0]]).astype(np.float32)
    got = low(tf.constant(x)).numpy().astype(np.float64)
    tol = (2e-6 + low.max_error) * np.maximum(1.0, np.abs(x))
    assert np.all(np.abs(got - tanhexp_numpy(x)) <= tol) and np.all(np.isfinite(got)), name


@pytest.mark.parametrize("name", POOLED)
def test_pooled_layer_matches_reference(name):
    low = LOWERINGS[name]
    x = np.random.default_rng(0).normal(0, 3, (4, 9, 9, 5)).astype(np.float32)
    x[0] -= 6  # whole windows negative: where pool_max differs
    err = np.abs(LoweredTanhExpPool(name, (2, 2))(tf.constant(x)).numpy() - _ref_pooled(x))
    if low.exact:
        assert err.max() <= 2e-6 * max(1.0, np.abs(x).max())
    else:
        assert err.max() <= (low.max_error + 2e-6) * np.maximum(1.0, np.abs(x).max()) + POOL_MAX_ERROR


def test_pool_exact_equals_act_then_pool():
    # quasi-convexity: max over a window of f = max(f(max), f(min)); TF's vectorized exp/tanh may
    # round the same input 1 ulp apart at different tensor positions, hence rtol 1e-6, not ==
    x = np.random.default_rng(3).normal(-0.5, 2, (2, 16, 16, 8)).astype(np.float32)
    direct = L.MaxPooling2D(2)(TanhExp()(tf.constant(x))).numpy()
    fused = LoweredTanhExpPool("pool_exact3", (2, 2))(tf.constant(x)).numpy()
    np.testing.assert_allclose(fused, direct, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", STRUCTURES)
def test_lowered_copy_keeps_weights_and_predictions(name):
    kinds = check_copy(name, lowered_copy)
    if pool_of(name) == "none":
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


def test_sequential_same_padding_and_reload(tmp_path):
    keras.utils.set_random_seed(0)
    seq = keras.Sequential([keras.Input((7, 7, 3)), L.Conv2D(4, 3, padding="same"), TanhExp(),
                            L.MaxPooling2D(2, padding="same"), L.Flatten(), L.Dense(3)])
    x = np.random.default_rng(0).normal(0, 1, (16, 7, 7, 3)).astype(np.float32)
    low = lowered_copy(seq, "pool_exact3")
    assert any(isinstance(lay, LoweredTanhExpPool) for lay in low.layers)
    assert np.abs(low(x).numpy() - seq(x).numpy()).max() <= 1e-5
    model = lowered_copy(_tiny(), "pool_exact3")
    model.save(tmp_path / "m.keras")
    back = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(back(_images()).numpy(), model(_images()).numpy(), atol=1e-7)


@pytest.mark.parametrize("int8", [False, True], ids=["float32", "int8"])
def test_candidate_graphs_hold_builtin_ops_only(int8):
    from export.opcheck import tflite_ops, violations
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    h = L.Conv2D(4, 3, kernel_initializer=keras.initializers.RandomNormal(0, 1.5))(inp)
    outs = [L.Flatten()(LoweredTanhExp(n)(h) if pool_of(n) == "none" else LoweredTanhExpPool(n, (2, 2))(h))
            for n in STRUCTURES]
    model = keras.Model(inp, L.Dense(10, activation="softmax")(L.Concatenate()(outs)))
    ops = tflite_ops(_tflite(model, int8))
    assert not violations("tflite", ops) and not any(o.startswith("Flex") for o in ops), ops
