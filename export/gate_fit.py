"""Fit a sigmoid-gate lowering of TanhExp to one model's own activations, at export time.

Why: `lrsgate`'s shipped constants are a least-squares fit over the seed net's conv outputs. On
another network the values TanhExp sees sit elsewhere (MobileNetV2's 35 activations: agreement
fell from 96.4 % with the exact float island to 91.0 %), so the approximation is only as good as
its fit to the inputs it will meet. Each TanhExp layer gets its own constants, fitted to that
layer's inputs on the exporter's calibration sample (training split only), in float64 numpy:
Levenberg-Marquardt on the mean squared error of x*gate(x) against x*tanh(e^x), started from the
shipped constants. No scipy: the exporter's dependencies stay as they are.
"""
from __future__ import annotations

import numpy as np


def tanhexp64(x: np.ndarray) -> np.ndarray:
    return x * np.tanh(np.exp(np.minimum(x, 30.0)))


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(z / 2.0))


def lrsgate64(p, x: np.ndarray) -> np.ndarray:
    """x * sigmoid(a * leaky_relu(x - t, alpha) + b), p = (a, alpha, t, b), in float64."""
    a, alpha, t, b = p
    u = x - t
    return x * _sigmoid(a * np.where(u > 0, u, alpha * u) + b)


def _residual_and_jacobian(p, x, f):
    a, alpha, t, b = p
    u = x - t
    pos = u > 0
    h = np.where(pos, u, alpha * u)
    s = _sigmoid(a * h + b)
    r = x * s - f
    dz = x * s * (1.0 - s)  # d(x * sigmoid(z)) / dz
    jac = np.stack([dz * h, dz * np.where(pos, 0.0, u), -dz * a * np.where(pos, 1.0, alpha), dz], axis=1)
    return r, jac


def fit_lrsgate(x: np.ndarray, p0, iters: int = 200, tol: float = 1e-12, target=tanhexp64) -> tuple[tuple, float]:
    """((a, alpha, t, b), rms error) minimizing mean (lrsgate64(p, x) - target(x))^2 over the
    samples x. Levenberg-Marquardt from p0; alpha kept in [0, 1] (a leaky ReLU, which ONNX
    Runtime and XNNPACK run as an integer table), a > 0."""
    x = np.asarray(x, np.float64).reshape(-1)
    f = target(x)
    p = np.asarray(p0, np.float64)
    r, jac = _residual_and_jacobian(p, x, f)
    cost, lam = float(r @ r), 1e-3
    for _ in range(iters):
        jtj, g = jac.T @ jac, jac.T @ r
        step = np.linalg.solve(jtj + lam * np.diag(np.diag(jtj) + 1e-12), -g)
        q = p + step
        q[1] = np.clip(q[1], 0.0, 1.0)
        q[0] = max(q[0], 1e-3)
        r2, jac2 = _residual_and_jacobian(q, x, f)
        c2 = float(r2 @ r2)
        if c2 < cost:
            done = cost - c2 <= tol * max(cost, 1e-30)
            p, r, jac, cost, lam = q, r2, jac2, c2, lam / 3
            if done:
                break
        else:
            lam *= 4
            if lam > 1e12:
                break
    return tuple(float(v) for v in p), float(np.sqrt(cost / len(x)))


def layer_inputs(model, images: np.ndarray, layers, n: int = 200_000, seed: int = 0) -> dict:
    """{layer name: up to n seeded samples of what the layer receives} for `layers` (top-level
    layers of a functional or Sequential model) on float model inputs `images`."""
    import tf_keras as keras
    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    outs = [np.concatenate(o) for o in zip(*(
        (lambda y: y if isinstance(y, list) else [y])(probe(images[i:i + 100], training=False))
        for i in range(0, len(images), 100)))]
    rng = np.random.default_rng(seed)
    samples = {}
    for layer, out in zip(layers, outs):
        v = np.asarray(out, np.float64).reshape(-1)
        samples[layer.name] = v if v.size <= n else rng.choice(v, n, replace=False)
    return samples
