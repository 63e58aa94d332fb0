"""One-off experiment (not part of the package, no tests): where do int8's top-1
disagreements with Keras come from, and does AdaRound (learned weight rounding, Nagel et al.
2020, arXiv 2004.10568) remove the weight part? Result and reading: docs/lowering.md.

Trick: weights snapped to the int8 grid the converter itself picks (scales read from the
baseline int8 .tflite) are re-quantized by the converter to exactly the chosen integers, so a
learned rounding reaches the .tflite through the ordinary converter.

Validation split only; calibration and AdaRound data from the TRAINING split.
    python experiments/adaround.py RUN [ITERS=3000] [N_IMAGES=2000] [float|int8] [pre|post]
(the 4th argument: where each rounded layer's inputs come from, the float model with the layers
before it rounded, or the int8 .tflite; the 5th: match each conv's output before or after
its activation.)
"""
import sys, tempfile, time
from pathlib import Path
import numpy as np
import tensorflow as tf
import tf_keras as keras
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from export.lowering import choose, has_tanhexp, lowered_copy
from export.run import calibration_sample, load_model, load_splits, open_run, to_float
from export.tflite import convert_int8, predict
from runtime.backends import dequantize, quantize
from runtime.backends.litert import open_interpreter
from train.activations import tanhexp as exact_act

run = sys.argv[1]
ITERS = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
N = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
ZETA, GAMMA = 1.1, -0.1
SRC = sys.argv[4] if len(sys.argv) > 4 else "float"      # the rounded layer's inputs: float model or int8 .tflite
TARGET = sys.argv[5] if len(sys.argv) > 5 else "pre"      # match the conv output before or after the activation

r = open_run(run)
model = load_model(r.dir / "model.keras")
s = load_splits(r)
calib = to_float(calibration_sample(s.x_train, 500, 0))
xval = to_float(s.x_val)
ref = model.predict(xval, batch_size=500, verbose=0)
lowered = has_tanhexp(model)
base = lowered_copy(model, choose("int8")) if lowered else model


def copy_of(m):
    """A fresh copy of m, weights included: the int8 lowering for TanhExp, else a clone."""
    c = lowered_copy(m, choose("int8")) if lowered else keras.models.clone_model(m)
    c.set_weights(m.get_weights())
    return c


def agree(p):
    return 100 * float((p.argmax(1) == ref.argmax(1)).mean())


CALIB_SEEDS = [0, 1, 2]


def int8_tensors(buf):
    """(details, values) of the int8 weights of a .tflite's CONV_2D and FULLY_CONNECTED ops."""
    with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
        f.write(buf); f.flush()
        # no XNNPACK: it packs the weights away and the interpreter then holds none to read
        it = Interpreter(model_path=f.name, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        it.allocate_tensors()
        weights = {o["inputs"][1] for o in it._get_ops_details() if o["op_name"] in ("CONV_2D", "FULLY_CONNECTED")}
        out = [(d, it.get_tensor(d["index"]).copy()) for d in it.get_tensor_details() if d["index"] in weights]
        return out


def int8_agreement(m, tag):
    """Mean val agreement over calibration samples CALIB_SEEDS (the ranges alone move it ~0.5 pt)."""
    res, bufs = [], []
    with tempfile.TemporaryDirectory() as t:
        for cs in CALIB_SEEDS:
            path = Path(t) / "m.tflite"
            path.write_bytes(convert_int8(m, to_float(calibration_sample(s.x_train, 500, cs))))
            q = np.asarray(predict(path, s.x_val)[0])
            res.append(agree(q)); bufs.append(path.read_bytes())
    print(f"{tag}: int8 val agreement {np.mean(res):.2f} % ({' / '.join(f'{v:.2f}' for v in res)})", flush=True)
    return bufs[0]


buf = int8_agreement(base, "baseline")
print(f"float lowered vs keras: {agree(base.predict(xval, batch_size=500, verbose=0)):.2f} %")

# weight scales from the converted model: match each Keras kernel to a tflite int8 weight tensor
tens = int8_tensors(buf)
kern_layers = [l for l in base.layers if hasattr(l, "kernel")]
scales = {}
for l in kern_layers:
    w = l.get_weights()[0]
    tw = np.moveaxis(w, -1, 0)  # OHWI / [out, in]
    for d, val in tens:
        sc = d["quantization_parameters"]["scales"]
        if val.shape == tw.shape and np.allclose(val * sc.reshape((-1,) + (1,) * (val.ndim - 1)), tw, atol=sc.max()):
            scales[l.name] = np.broadcast_to(sc, (w.shape[-1],)).astype(np.float32)
            print(f"{l.name}: {len(sc)} scale(s), zero points {set(d['quantization_parameters']['zero_points'].tolist())}")
            break
    assert l.name in scales, l.name


def snapped(w, sc, frac=None):
    q = np.floor(w / sc) + (np.round(w / sc - np.floor(w / sc)) if frac is None else frac)
    return (np.clip(q, -127, 127) * sc).astype(np.float32)


def nearest(m):
    """m with every kernel rounded to the nearest level of its int8 grid, in float."""
    for l in kern_layers:
        w, *rest = m.get_layer(l.name).get_weights()
        m.get_layer(l.name).set_weights([snapped(w, scales[l.name]), *rest])
    return m


# weight-only rounding error, float everything else
wq = nearest(copy_of(model))
print(f"weights-only int8 (float acts, lowered): {agree(wq.predict(xval, batch_size=500, verbose=0)):.2f} %")
wexact = keras.models.clone_model(model); wexact.set_weights(model.get_weights())
nearest(wexact)
print(f"weights-only int8 (float acts, exact TanhExp): {agree(wexact.predict(xval, batch_size=500, verbose=0)):.2f} %")
b2 = int8_agreement(wq, "snapped nearest")
w2 = {tuple(v.shape): v for _, v in int8_tensors(b2)}
print("int8 weights differing from the baseline's:", {tuple(v.shape): int((v != w2[tuple(v.shape)]).sum()) for _, v in tens})

# AdaRound, layer by layer: target = exact float model's layer output on float inputs;
# the rounded layer sees inputs from the lowered model with the layers before it already rounded.
xtr = to_float(calibration_sample(s.x_train, N, 1))


def pre_act(m, name):
    l = m.get_layer(name)
    return keras.Model(m.input, l.input), l


def int8_inputs(m, k):
    """Dequantized input of the k-th CONV_2D/FULLY_CONNECTED op of m's int8 conversion, on xtr."""
    with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
        f.write(convert_int8(m, calib)); f.flush()
        # the device's input quantization (runtime.backends), intermediate tensors kept to read
        it = open_interpreter(f.name, None, xnnpack=False, experimental_preserve_all_tensors=True)
        d = it.get_input_details()[0]
        it.resize_tensor_input(d["index"], [100, 32, 32, 3]); it.allocate_tensors()
        ops = [o for o in it._get_ops_details() if o["op_name"] in ("CONV_2D", "FULLY_CONNECTED")]
        ti = ops[k]["inputs"][0]
        td = [t for t in it.get_tensor_details() if t["index"] == ti][0]
        sc, zp = td["quantization"]
        out = []
        for i in range(0, len(xtr), 100):  # N_IMAGES: a multiple of 100
            it.set_tensor(d["index"], quantize(xtr[i:i + 100], np.int8, *d["quantization"]))
            it.invoke()
            out.append(dequantize(it.get_tensor(ti), sc, zp))
        return np.concatenate(out)


ada = copy_of(model)
for pos, name in enumerate(l.name for l in kern_layers):
    t0 = time.time()
    fin, fl = pre_act(model, name)
    qin, ql = pre_act(ada, name)
    X_f = fin.predict(xtr, batch_size=500, verbose=0)
    X_q = qin.predict(xtr, batch_size=500, verbose=0) if SRC == "float" else int8_inputs(ada, pos)
    w, b = fl.get_weights()
    sc = scales[name]
    conv = w.ndim == 4
    op = (lambda x, k: tf.nn.conv2d(x, k, 1, "VALID")) if conv else tf.matmul
    Y = (op(tf.constant(X_f), w) + b).numpy()
    post = TARGET == "post" and conv
    act = (exact_act if lowered else tf.nn.relu) if post else tf.identity
    if post:
        Y = act(tf.constant(Y)).numpy()
    wf = np.floor(w / sc)
    rest = w / sc - wf
    V = tf.Variable(-np.log((ZETA - GAMMA) / (rest - GAMMA) - 1).astype(np.float32))
    opt = keras.optimizers.Adam(1e-2)
    rng = np.random.default_rng(0)
    Xq, Yt, wf_t, sc_t = tf.constant(X_q), tf.constant(Y), tf.constant(wf.astype(np.float32)), tf.constant(sc)

    @tf.function
    def step(idx, beta, lam):
        with tf.GradientTape() as tape:
            h = tf.clip_by_value(tf.sigmoid(V) * (ZETA - GAMMA) + GAMMA, 0, 1)
            k = tf.clip_by_value(wf_t + h, -127, 127) * sc_t
            out = act(op(tf.gather(Xq, idx), k) + b)
            rec = tf.reduce_mean(tf.reduce_sum(tf.reshape(tf.square(out - tf.gather(Yt, idx)), [tf.shape(idx)[0], -1]), 1))
            reg = tf.reduce_sum(1 - tf.pow(tf.abs(2 * h - 1), beta))
            loss = rec + lam * reg
        opt.apply_gradients([(tape.gradient(loss, V), V)])
        return rec, reg

    for i in range(ITERS):
        warm = i < 0.2 * ITERS
        beta = 20 - (20 - 2) * max(0.0, (i - 0.2 * ITERS) / (0.8 * ITERS))
        rec, reg = step(tf.constant(rng.choice(N, 32, replace=False)), tf.constant(beta, tf.float32),
                        tf.constant(0.0 if warm else 0.01, tf.float32))
    h = (tf.sigmoid(V).numpy() * (ZETA - GAMMA) + GAMMA) >= 0.5
    changed = float((h != (rest >= 0.5)).mean())
    ql.set_weights([snapped(w, sc, h.astype(np.float32)), b])
    print(f"{name}: rec {float(rec):.4g} reg {float(reg):.1f}, {100*changed:.1f} % of roundings changed vs nearest, {time.time()-t0:.0f} s", flush=True)

print(f"[{SRC}/{TARGET}] adaround weights, float acts: {agree(ada.predict(xval, batch_size=500, verbose=0)):.2f} %")
int8_agreement(ada, f"[{SRC}/{TARGET}] adaround int8")
