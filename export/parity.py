"""Parity of every artifact with the Keras float model on the full test split, and the table.

The reference is the trained model exactly as loaded (TanhExp layer, not the lowering), so
a lowering that changes the function shows up here as disagreement.
"""
from __future__ import annotations

import numpy as np

from export.run import to_float

# What each mode should reach (the export issue's targets); checked and printed, never
# enforced: a miss must be visible rather than hidden. Each check gets the artifact's parity,
# the Keras float accuracy and the size ratio to float32 of the same format; None = can't judge.
def _drop(p, keras_acc, _ratio):
    return None if keras_acc is None else (keras_acc - p["test_accuracy"]) * 100


_CHECKS = {
    "agreement 100 %": lambda p, k, r: p["agreement"] >= 1.0,
    "max |dp| <= 1e-5": lambda p, k, r: p["max_abs_diff"] <= 1e-5,
    "agreement >= 99.9 %": lambda p, k, r: p["agreement"] >= 0.999,
    "agreement >= 98.5 %": lambda p, k, r: p["agreement"] >= 0.985,
    "drop <= 0.3 pt": lambda p, k, r: None if _drop(p, k, r) is None else _drop(p, k, r) <= 0.3 + 1e-9,
    "drop <= 0.1 pt": lambda p, k, r: None if _drop(p, k, r) is None else _drop(p, k, r) <= 0.1 + 1e-9,
    "size <= 0.3x float32": lambda p, k, r: None if r is None else r <= 0.3,
}
TARGETS = {
    "float32": ["agreement 100 %", "max |dp| <= 1e-5"],
    "float16": ["agreement >= 99.9 %"],
    "dynamic": ["drop <= 0.3 pt"],
    "int8": ["drop <= 0.3 pt", "agreement >= 98.5 %", "size <= 0.3x float32"],
    "qat": ["drop <= 0.1 pt", "size <= 0.3x float32"],
}


def keras_probs(model, images: np.ndarray, batch: int = 500) -> np.ndarray:
    out = [model(to_float(images[i:i + batch]), training=False).numpy() for i in range(0, len(images), batch)]
    return np.concatenate(out).astype(np.float32)


def compare(probs: np.ndarray, ref: np.ndarray, y: np.ndarray) -> dict:
    if probs.shape != ref.shape:
        raise ValueError(f"output shape {probs.shape} differs from the Keras model's {ref.shape}")
    pred = probs.argmax(1)
    diff = np.abs(probs.astype(np.float64) - ref.astype(np.float64))
    return {"count": int(len(y)), "test_accuracy": round(float((pred == y).mean()), 6),
            "agreement": round(float((pred == ref.argmax(1)).mean()), 6),
            "mean_abs_diff": float(f"{diff.mean():.3g}"), "max_abs_diff": float(f"{diff.max():.3g}")}


def target_note(entry: dict, keras_acc: float | None, float32_size: int | None) -> str:
    """'ok', 'MISSED (<which>)' or '-' when the mode has no target or nothing can be judged."""
    p, mode = entry.get("parity") or {}, entry.get("mode")
    if not p or mode not in TARGETS:
        return "-"
    ratio = entry["size_bytes"] / float32_size if float32_size else None
    results = {name: _CHECKS[name](p, keras_acc, ratio) for name in TARGETS[mode]}
    missed = [name for name, ok in results.items() if ok is False]
    if missed:
        return f"MISSED ({', '.join(missed)})"
    return "ok" if any(ok for ok in results.values()) else "-"


def rows(manifest: dict) -> list[dict]:
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
            "target": target_note(a, keras_acc, base),
        })
    return out


def table(manifest: dict) -> str:
    r = rows(manifest)
    if not r:
        return "(no artifacts)"
    cols = list(r[0])
    width = {c: max(len(c), *(len(x[c]) for x in r)) for c in cols}
    line = lambda d: "  ".join(d[c].ljust(width[c]) if c in ("file", "in", "target") else d[c].rjust(width[c])
                               for c in cols)
    src = manifest.get("source_run") or {}
    head = (f"{src.get('dir')}: {src.get('arch')}/{src.get('act')}, Keras float test accuracy "
            f"{src.get('keras_test_accuracy')} on {manifest['test_split']['count']} test images")
    return "\n".join([head, line({c: c for c in cols}), line({c: "-" * width[c] for c in cols}), *map(line, r)])
