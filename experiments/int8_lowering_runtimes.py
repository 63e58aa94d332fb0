"""One-off experiment (not part of the package): TanhExp's int8 lowerings on both runtimes, each
file exported by the exporter itself, against the ReLU net's int8 file, timed in one process.

Why: ONNX Runtime has integer kernels for Sigmoid and LeakyRelu (256-entry tables), Add, Mul,
Conv and MaxPool, none for Exp, Tanh or Elu. The table lowerings (`lrsgate`, export/lowering.py;
`sgate1`, `sgate2`, `lrsgate_minimax`, experiments/lowering_candidates.py) write TanhExp's gate
with sigmoids whose scalars fold into DequantizeLinear nodes (export/onnx_qdq.py), so the whole
int8.onnx runs in integer kernels; `naive` is the float island that was the default before.
LiteRT (XNNPACK) takes int8 LOGISTIC, LEAKY_RELU, MUL and ADD too, so the same formulas are
timed there beside `elu3`.

Per candidate: validation accuracy and top-1 agreement with the Keras float model (`--split
test` once, for the chosen files' record), the ops ONNX Runtime leaves in float after its optimizations, and p50 of
single-image calls, every file in one process, interleaved (`runtime.profile.time_interleaved`,
the bench's session options: one thread, XNNPACK on).

    python -m experiments.int8_lowering_runtimes --tanhexp-run runs/seed-tanhexp-s0 \\
        --relu-run runs/seed-relu-s0 --json docs/results/int8-lowering-runtimes.json
    python -m experiments.int8_lowering_runtimes --tanhexp-model runs/mnv2-tanhexp/model.keras \\
        --relu-model runs/mnv2-relu6/model.keras --input-scale 0.00784313725490196 --input-offset -1 \\
        --onnx lrsgate --tflite elu3 --split test
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from runtime.cli import Parser

ONNX_CANDIDATES = ("naive", "lrsgate", "lrsgate_minimax", "sgate1", "sgate2")
TFLITE_CANDIDATES = ("elu3", "lrsgate", "sgate1", "sgate2", "identity")


def _register_floor() -> None:
    """`identity`: the TanhExp layers compute x. Not TanhExp (its agreement means nothing): the
    cost floor of any activation that is not fused into the convolution, as ReLU is."""
    from export import lowering as L
    L.LOWERINGS.setdefault("identity", L.Lowering(lambda x: x * 1.0, False, "x (a cost floor, not TanhExp)", 1.0))


def _export(source: dict, out: Path, fmt: str, lowering: str | None, calib_size: int) -> dict:
    """float32 and int8 of `fmt`, with `lowering` as that format's int8 choice; the manifest.
    `source`: ExportConfig fields naming the model (run=..., or model=... with its input scale)."""
    from export import lowering as L
    from export.api import export
    from export.config import ExportConfig
    key = (fmt, "int8")
    saved = L.FORMAT_DEFAULTS.get(key)
    if lowering:
        L.FORMAT_DEFAULTS[key] = lowering
    try:
        export(ExportConfig(format=fmt, quant=["float32", "int8"], out=str(out), calib_size=calib_size, **source))
    finally:
        if saved is None:
            L.FORMAT_DEFAULTS.pop(key, None)
        else:
            L.FORMAT_DEFAULTS[key] = saved
    return json.loads((out / "manifest.json").read_text())


def main(argv=None) -> int:
    ap = Parser(prog="python -m experiments.int8_lowering_runtimes", description=__doc__.splitlines()[0])
    ap.add_argument("--tanhexp-run", help="run folder of the TanhExp net")
    ap.add_argument("--relu-run", help="run folder of the ReLU net")
    ap.add_argument("--tanhexp-model", help="or a model file people bring (then --split test: a brought "
                                            "model's data has no validation split)")
    ap.add_argument("--relu-model", help="its ReLU (or ReLU6) twin")
    ap.add_argument("--input-scale", type=float, help="with --*-model: model input = pixel * S + OFFSET")
    ap.add_argument("--input-offset", type=float)
    ap.add_argument("--onnx", default=",".join(ONNX_CANDIDATES), help="ONNX int8 lowerings to compare")
    ap.add_argument("--tflite", default=",".join(TFLITE_CANDIDATES), help="TFLite int8 lowerings to compare")
    ap.add_argument("--split", choices=("val", "test"), default="val",
                    help="where accuracy, agreement and the timed images come from: choose on val; "
                         "test once, for the chosen files' record")
    ap.add_argument("--calib-size", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3000, help="timed single-image calls per file")
    ap.add_argument("--rounds", type=int, default=30,
                    help="interleaving rounds: every file gets runs/rounds calls per round, so a noisy "
                         "spell on this shared machine hits all files alike")
    ap.add_argument("--json")
    a = ap.parse_args(argv)

    from experiments.lowering_candidates import register
    from export.run import load_model, load_splits, open_run, to_float
    from runtime.backends import get_backend
    register()
    _register_floor()
    from export.run import fit_images, open_model_file
    from runtime.backends import normalization_from
    norm = normalization_from(a.input_scale, a.input_offset)
    sources = {}
    for act in ("tanhexp", "relu"):
        run, model_file = getattr(a, f"{act}_run"), getattr(a, f"{act}_model")
        if bool(run) == bool(model_file):
            ap.error(f"give one of --{act}-run and --{act}-model")
        sources[act] = ({"run": run} if run else
                        {"model": model_file, "input_scale": a.input_scale, "input_offset": a.input_offset})
    if (a.tanhexp_model or a.relu_model) and a.split != "test":
        ap.error("a brought model's data has no validation split: use --split test")
    from runtime.profile import time_interleaved
    from runtime.provenance import provenance

    files = []  # (row dict, path)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        refs = {}
        for act, src in sources.items():
            r = open_run(src["run"]) if "run" in src else open_model_file(src["model"], None)
            splits = load_splits(r)
            model = load_model(r.model_path)
            fit_images(splits, model)  # a brought model may take another image size
            xv = to_float(splits.x_val if a.split == "val" else splits.x_test, norm)
            p = np.concatenate([model(xv[i:i + 500], training=False).numpy() for i in range(0, len(xv), 500)])
            refs[act] = (p, splits)
        plan = [("relu", "onnx", None), ("relu", "tflite", None)]
        plan += [("tanhexp", "onnx", c) for c in a.onnx.split(",") if c]
        plan += [("tanhexp", "tflite", c) for c in a.tflite.split(",") if c]
        seen_float = set()
        for act, fmt, low in plan:
            out = tmp / f"{act}-{fmt}-{low}"
            m = _export(sources[act], out, fmt, low, a.calib_size)
            for art in m["artifacts"]:
                mode = art["mode"]
                if mode == "float32" and (act, fmt) in seen_float:
                    continue
                seen_float.add((act, fmt)) if mode == "float32" else None
                row = {"act": act, "format": fmt, "mode": mode, "lowering": art.get("lowering"),
                       "optimized_float_ops": art.get("optimized_graph", {}).get("float_ops"),
                       "optimized_ops": art.get("optimized_graph", {}).get("ops"),
                       "ops": art.get("op_counts")}
                if fmt == "tflite":  # the ops LiteRT's XNNPACK delegate leaves to its reference kernels
                    from collections import Counter

                    from experiments.lowering_bench import delegation, interpreter
                    it = interpreter((out / art["file"]).read_bytes())
                    row["not_in_xnnpack"] = dict(Counter(op for op, ok in delegation(it) if not ok))
                files.append((row, out / art["file"]))
        calls = []
        for row, path in files:
            ref, splits = refs[row["act"]]
            b = get_backend(row["format"]).load(path, threads=1)
            x, y = (splits.x_val, splits.y_val) if a.split == "val" else (splits.x_test, splits.y_test)
            p = b.run(to_float(x, norm), 500)
            row.update(split=a.split, accuracy=float(np.mean(p.argmax(1) == y)),
                       keras_accuracy=float(np.mean(ref.argmax(1) == y)),
                       agreement=float(np.mean(p.argmax(1) == ref.argmax(1))),
                       max_abs_dp=float(np.abs(p - ref).max()))
            row["drop_pt"] = 100 * (row["keras_accuracy"] - row["accuracy"])
            b.set_batch(1)
            one = b.prepare(to_float(x[:1], norm))
            calls.append(lambda b=b, one=one: b.infer(one))
            print(f"  {row['act']} {row['format']} {row['mode']} {row['lowering']}: agreement "
                  f"{row['agreement']:.4f}", flush=True)
        for (row, _), t in zip(files, time_interleaved(calls, a.runs, rounds=a.rounds)):
            row["p50_us"] = t * 1e6
    base = {(r["format"], r["mode"]): r["p50_us"] for r, _ in files if r["act"] == "relu"}
    own_float = {r["format"]: r["p50_us"] for r, _ in files if r["act"] == "tanhexp" and r["mode"] == "float32"}
    rows = [r for r, _ in files]
    for r in rows:
        r["x_relu_same_mode"] = r["p50_us"] / base[(r["format"], r["mode"])]
        if r["act"] == "tanhexp":
            r["x_own_float32"] = r["p50_us"] / own_float[r["format"]]
    print(f"| act | format | mode | lowering | {a.split} drop (pt) | {a.split} agreement | p50 µs | × ReLU | × own float32 | ORT: float ops after optimizing; LiteRT: ops outside XNNPACK |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        fl = r["optimized_float_ops"]
        if fl is None:
            fl = r.get("not_in_xnnpack")
        fl = "–" if fl is None else (", ".join(f"{k}×{v}" for k, v in fl.items()) or "none")
        print(f"| {r['act']} | {r['format']} | {r['mode']} | {r['lowering'] or '–'} | {r['drop_pt']:+.2f} | "
              f"{100 * r['agreement']:.2f} % | {r['p50_us']:.1f} | {r['x_relu_same_mode']:.2f} | "
              f"{r.get('x_own_float32', float('nan')):.2f} | {fl} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"provenance": provenance(), "command": "python -m experiments.int8_lowering_runtimes",
                                            "sources": sources,
                                            "split": a.split, "calib_size": a.calib_size, "runs": a.runs, "rounds": a.rounds,
                                            "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
