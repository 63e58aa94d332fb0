"""Parity of every artifact with the Keras float model on the full test split, and the table.

The reference is the trained model exactly as loaded (TanhExp layer, not the lowering), so
a lowering that changes the function shows up here as disagreement. The artifact side runs
through the device's own backend (runtime.backends): the same normalization, quantization
and layout code as `python -m runtime.bench`, so parity is what a device computes.
"""
from __future__ import annotations

import numpy as np

from export.run import to_float
from runtime.backends import NORMALIZATION

# The parity check of each file against the Keras float model it came from: printed beside the
# figures, never enforced (a failed check must be visible, not turned into a failed export).
# float32 must compute the same function, so its probabilities are judged: max |dp| within a
# tolerance that leaves room for a runtime's own float arithmetic (XNNPACK's float32 EXP on
# AVX-512 is 13.7 ulp off, which shows as ~1.1e-5). Every reduced-precision mode is judged by what
# a user loses, the accuracy drop; top-1 agreement stays in its own column, reported, not judged.
MAX_DP = 2e-5        # default of --max-dp
MAX_DROP_PT = 0.3    # default of --max-drop-pt


def parity_check(entry: dict, keras_acc: float | None, max_dp: float = MAX_DP,
                 max_drop_pt: float = MAX_DROP_PT) -> str:
    """'pass (...)', 'FAIL (...)', or '-' when there is nothing to judge."""
    p, mode = entry.get("parity") or {}, entry.get("mode")
    if not p:
        return "-"
    if mode == "float32":
        d = p["max_abs_diff"]
        return f"{'pass' if d <= max_dp else 'FAIL'} (max|dp| {'<=' if d <= max_dp else '>'} {max_dp:g})"
    if keras_acc is None:
        return "-"
    drop = (keras_acc - p["test_accuracy"]) * 100
    ok = drop <= max_drop_pt + 1e-9
    return f"{'pass' if ok else 'FAIL'} (drop {'<=' if ok else '>'} {max_drop_pt:g} pt)"


def predict(backend, images: np.ndarray, batch: int, outputs: str = "probabilities") -> tuple[np.ndarray, int]:
    """(probabilities, images per call) of a loaded runtime.backends model for uint8 NHWC
    images; the backend is closed afterwards. outputs "logits": softmax applied by the backend,
    as on the device."""
    try:
        backend.outputs = outputs
        return backend.run(images, batch), backend.batch
    finally:
        backend.close()


def keras_probs(model, images: np.ndarray, batch: int = 500, normalization=NORMALIZATION) -> np.ndarray:
    out = [model(to_float(images[i:i + batch], normalization), training=False).numpy()
           for i in range(0, len(images), batch)]
    return np.concatenate(out).astype(np.float32)


def compare(probs: np.ndarray, ref: np.ndarray, y: np.ndarray) -> dict:
    if probs.shape != ref.shape:
        raise ValueError(f"output shape {probs.shape} differs from the Keras model's {ref.shape}")
    pred = probs.argmax(1)
    diff = np.abs(probs.astype(np.float64) - ref.astype(np.float64))
    return {"count": int(len(y)), "test_accuracy": round(float((pred == y).mean()), 6),
            "agreement": round(float((pred == ref.argmax(1)).mean()), 6),
            "mean_abs_diff": float(f"{diff.mean():.3g}"), "max_abs_diff": float(f"{diff.max():.3g}")}


def rows(manifest: dict, max_dp: float = MAX_DP, max_drop_pt: float = MAX_DROP_PT) -> list[dict]:
    keras_acc = (manifest.get("source_run") or {}).get("keras_test_accuracy")
    f32 = {a["format"]: a["size_bytes"] for a in manifest["artifacts"] if a["mode"] == "float32"}
    out = []
    for a in manifest["artifacts"]:
        p = a.get("parity") or {}
        base = f32.get(a["format"])
        out.append({
            "file": a["file"], "KB": f"{a['size_bytes'] / 1024:.1f}",
            "x f32": f"{a['size_bytes'] / base:.2f}" if base else "-",
            "export s": f"{a.get('export_seconds', 0):.1f}",
            "in": f"{a['input']['dtype']} {a['input']['layout']}",
            "acc": f"{p['test_accuracy']:.4f}" if p else "-",
            "dacc pt": f"{(p['test_accuracy'] - keras_acc) * 100:+.2f}" if p and keras_acc is not None else "-",
            "agree %": f"{p['agreement'] * 100:.2f}" if p else "-",
            "mean|dp|": f"{p['mean_abs_diff']:.2e}" if p else "-",
            "max|dp|": f"{p['max_abs_diff']:.2e}" if p else "-",
            "op types": str(len(a.get("ops", []))),
            "transp": str(a["transposes"]) if "transposes" in a else "-",
            "parity check": parity_check(a, keras_acc, max_dp, max_drop_pt),
        })
    return out


def table(manifest: dict, max_dp: float = MAX_DP, max_drop_pt: float = MAX_DROP_PT) -> str:
    r = rows(manifest, max_dp, max_drop_pt)
    if not r:
        return "(no artifacts)"
    cols = list(r[0])
    width = {c: max(len(c), *(len(x[c]) for x in r)) for c in cols}
    line = lambda d: "  ".join(d[c].ljust(width[c]) if c in ("file", "in", "parity check") else d[c].rjust(width[c])
                               for c in cols)
    src = manifest.get("source_run") or {}
    head = (f"{src.get('dir')}: {src.get('arch')}/{src.get('act')}, Keras float test accuracy "
            f"{src.get('keras_test_accuracy')} on {manifest['test_split']['count']} test images")
    return "\n".join([head, line({c: c for c in cols}), line({c: "-" * width[c] for c in cols}), *map(line, r)])
