"""python -m runtime.report RESULTS.json [RESULTS.json ...] --out DIR

Merges edge-bench/1 results from several devices into DIR/report.md with PNG plots
(runtime.plots, matplotlib imported only there). Meant for a dev machine: matplotlib is not a
device dependency. Exit 2 with one `error:` line for unreadable input.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from runtime.errors import BenchError, one_line
from runtime.fileio import write_text
from runtime.provenance import MACHINE_KEYS
from runtime.schema import BENCH_SCHEMA, ROW_FIELDS
from runtime.table import markdown_table
from runtime.cli import Parser

ACTS = ("relu", "tanhexp")
REQUIRED = ("file", "format", "accuracy", "agreement_ref", "max_abs_diff_ref", "latency_ms_p50")  # read as r[key]


def load_results(paths) -> list[dict]:
    docs = []
    for p in map(Path, paths):
        try:
            doc = json.loads(p.read_text())
        except FileNotFoundError:
            raise BenchError(f"result file not found: {p}") from None
        except OSError as e:
            raise BenchError(f"cannot read {p}: {e.strerror or one_line(e)}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BenchError(f"{p}: not valid JSON: {one_line(e)}") from None
        if not isinstance(doc, dict) or doc.get("schema") != BENCH_SCHEMA \
                or not isinstance(doc.get("rows"), list):
            raise BenchError(f"{p}: not an {BENCH_SCHEMA} result (from python -m runtime.bench --json)")
        for i, row in enumerate(doc["rows"]):
            problem = _row_problem(row)
            if problem:
                raise BenchError(f"{p}: row {i}: {problem}")
        doc["_path"] = str(p)
        docs.append(doc)
    return docs


def _row_problem(row) -> str | None:
    """Why a row cannot be reported, or None. Keys added to the schema later may be missing."""
    if not isinstance(row, dict):
        return f"not an object but {type(row).__name__}"
    missing = [k for k in REQUIRED if k not in row]
    if missing:
        return f"missing {', '.join(missing)}"
    for k, v in row.items():
        types = ROW_FIELDS.get(k, (None,))[0]
        if types and v is not None and (not isinstance(v, types) or (isinstance(v, bool) and bool not in types)):
            return f"{k} is {type(v).__name__} {v!r}, expected {'/'.join(t.__name__ for t in types)}"
    return None


def merge(docs: list[dict]) -> list[dict]:
    """All rows, each tagged with its document's device label. Documents with the same label
    are one device (e.g. a ReLU and a TanhExp bundle benched on the same Pi)."""
    rows, seen = [], {}
    for doc in docs:
        dev = (doc.get("provenance") or {}).get("device") or {}
        label = (doc.get("settings") or {}).get("label") or dev.get("hostname") or "device"
        # One label must be one machine: the TanhExp/ReLU ratios below divide its timings.
        mach = tuple(dev.get(k) for k in MACHINE_KEYS)
        first = seen.setdefault(label, (mach, doc.get("_path", "?")))
        if first[0] != mach:
            diff = ", ".join(f"{k} {a!r} vs {b!r}" for k, a, b in zip(MACHINE_KEYS, first[0], mach) if a != b)
            raise BenchError(f"label {label!r} names two machines ({diff}) in {first[1]} and "
                             f"{doc.get('_path', '?')}: bench each with its own --label")
        doc["_label"] = label
        emulated = "emulated" in str(dev.get("cpu") or "").lower()  # e.g. shared/tools/pi-python
        rows += [{**r, "device": label, "act": (r.get("act") or "?").lower(), "_emulated": emulated}
                 for r in doc["rows"]]
    return rows


def act_pairs(rows: list[dict]) -> list[dict]:
    """TanhExp and ReLU builds of the same (device, arch, format, mode), side by side."""
    by = {}
    for r in rows:
        if not r.get("error") and r["act"] in ACTS:
            by.setdefault((r["device"], r.get("arch"), r["format"], r.get("mode")), {}).setdefault(r["act"], r)
    out = []
    for (dev, arch, fmt, mode), acts in by.items():
        if len(acts) == 2:
            re, te = acts["relu"], acts["tanhexp"]
            ratio = lambda k: (te[k] / re[k]) if te.get(k) and re.get(k) else None
            delta = (te["accuracy"] - re["accuracy"]) if None not in (te["accuracy"], re["accuracy"]) else None
            out.append({"device": dev, "arch": arch, "format": fmt, "mode": mode,
                        "relu_p50": re["latency_ms_p50"], "tanhexp_p50": te["latency_ms_p50"],
                        "latency_ratio": ratio("latency_ms_p50"),
                        "throughput_ratio": ratio("throughput_ips"),
                        "relu_acc": re["accuracy"], "tanhexp_acc": te["accuracy"], "acc_delta": delta,
                        "_emulated": bool(re.get("_emulated") or te.get("_emulated"))})
    return out


def float_deltas(rows: list[dict]) -> list[dict]:
    """Each model against the float32 build of the same device/act/arch (same format first)."""
    ok = [r for r in rows if not r.get("error")]
    base = {}
    for r in ok:
        if r.get("mode") == "float32":
            base.setdefault((r["device"], r["act"], r.get("arch"), r["format"]), r)
            base.setdefault((r["device"], r["act"], r.get("arch"), None), r)
    out = []
    for r in ok:
        b = base.get((r["device"], r["act"], r.get("arch"), r["format"])) \
            or base.get((r["device"], r["act"], r.get("arch"), None))
        d = {"device": r["device"], "act": r["act"], "arch": r.get("arch"), "format": r["format"],
             "mode": r.get("mode"), "accuracy": r["accuracy"], "agreement_ref": r["agreement_ref"],
             "max_abs_diff_ref": r["max_abs_diff_ref"], "acc_delta_pp": None, "speedup": None}
        if b is not None:
            if r["accuracy"] is not None and b["accuracy"] is not None:
                d["acc_delta_pp"] = (r["accuracy"] - b["accuracy"]) * 100
            if r.get("latency_ms_p50") and b.get("latency_ms_p50"):
                d["speedup"] = b["latency_ms_p50"] / r["latency_ms_p50"]
        out.append(d)
    return out


# An int8 model may lose this much test accuracy against its float model (the study's bound).
MAX_DROP_PT = 0.5
# Below this many test images one image moves accuracy by more than 0.1 pt: too coarse to
# tell a 0.5-pt loss from noise.
MIN_IMAGES = 1000


def ship(rows: list[dict], max_drop_pt: float = MAX_DROP_PT, min_images: int = MIN_IMAGES) -> list[dict]:
    """What to deploy on each device, per activation and architecture: the fastest model
    (single-image p50) whose test accuracy is at most `max_drop_pt` points below the best
    float32 build's on the same device. The answer is the device's own: on the AVX-512 VNNI
    EPYC it was int8.tflite, on an AVX2-only x86 a float32 model (docs/results.md)."""
    groups = {}
    for r in rows:
        if not r.get("error"):
            groups.setdefault((r["device"], r["act"], r.get("arch")), []).append(r)
    out = []
    for (dev, act, arch), rs in groups.items():
        d = {"device": dev, "act": act, "arch": arch, "pick": None, "latency_ms_p50": None,
             "speedup": None, "accuracy": None, "acc_delta_pp": None, "agreement_ref": None, "why": ""}
        timed = [r for r in rs if r.get("accuracy") is not None and r.get("latency_ms_p50")]
        floats = [r for r in timed if r.get("mode") == "float32"]
        n = min((r.get("count") or 0) for r in rs)
        if any(r.get("_emulated") for r in rs):
            d["why"] = "emulated CPU: its timings mean nothing"
        elif not floats:
            d["why"] = "no float32 build measured to compare with"
        elif n < min_images:
            d["why"] = f"{n} test images: too few to tell a {max_drop_pt:g}-pt loss"
        else:
            best = max(r["accuracy"] for r in floats)
            fastest_float = min(r["latency_ms_p50"] for r in floats)
            ok = [r for r in timed if (best - r["accuracy"]) * 100 <= max_drop_pt + 1e-9]
            pick = min(ok, key=lambda r: r["latency_ms_p50"])  # a float32 build always qualifies
            d.update(pick=f"{pick.get('mode')}.{pick['format']}", latency_ms_p50=pick["latency_ms_p50"],
                     speedup=fastest_float / pick["latency_ms_p50"], accuracy=pick["accuracy"],
                     acc_delta_pp=(pick["accuracy"] - best) * 100, agreement_ref=pick["agreement_ref"])
            f32 = {r["format"]: r["latency_ms_p50"] for r in floats}
            slower = [(r["format"], r["latency_ms_p50"] / f32[r["format"]]) for r in timed
                      if r.get("mode") == "int8" and r["latency_ms_p50"] > f32.get(r["format"], float("inf"))]
            if slower:  # worth saying: int8 is what one would expect to ship
                d["why"] = "int8 slower than float32 here: " + ", ".join(
                    f"int8.{fmt} {x:.2f}x float32.{fmt}" for fmt, x in slower)
        out.append(d)
    return out


DEVICE_COLS = [("device", "device", ""), ("cpu", "cpu", ""), ("arch", "arch", ""),
               ("isa", "isa", ""), ("cores", "cores", "d"), ("threads", "threads", "d"), ("images", "images", "d"),
               ("runtimes", "runtimes", ""), ("git", "git", ""), ("source", "source run", "")]
RESULT_COLS = [("device", "device", ""), ("act", "act", ""), ("arch", "arch", ""),
               ("format", "fmt", ""), ("mode", "mode", ""), ("accuracy", "acc", ".4f"),
               ("agreement_ref", "agree", ".4f"), ("max_abs_diff_ref", "max\u00a0|dp|", ".2e"),
               ("latency_ms_p50", "p50 ms", ".3f"), ("latency_ms_p90", "p90 ms", ".3f"),
               ("throughput_ips", "img/s", ".0f"), ("load_ms", "load ms", ".1f"),
               ("peak_rss_mb", "rss MB", ".1f"), ("size_kb", "KB", ".1f"),
               ("overhead_pct", "ovh %", ".1f")]
PAIR_COLS = [("device", "device", ""), ("arch", "arch", ""), ("format", "fmt", ""),
             ("mode", "mode", ""), ("relu_p50", "ReLU p50 ms", ".3f"),
             ("tanhexp_p50", "TanhExp p50 ms", ".3f"), ("latency_ratio", "latency ratio", ".2f"),
             ("throughput_ratio", "throughput ratio", ".2f"), ("relu_acc", "ReLU acc", ".4f"),
             ("tanhexp_acc", "TanhExp acc", ".4f"), ("acc_delta", "\u0394acc", "+.4f")]
SHIP_COLS = [("device", "device", ""), ("act", "act", ""), ("arch", "arch", ""), ("pick", "ship", ""),
             ("latency_ms_p50", "p50 ms", ".3f"), ("speedup", "speed-up vs float32", ".2f"),
             ("accuracy", "acc", ".4f"), ("acc_delta_pp", "\u0394acc vs float32 (pp)", "+.2f"),
             ("agreement_ref", "agreement vs Keras", ".4f"), ("why", "note", "")]
DELTA_COLS = [("device", "device", ""), ("act", "act", ""), ("arch", "arch", ""),
              ("format", "fmt", ""), ("mode", "mode", ""), ("accuracy", "acc", ".4f"),
              ("acc_delta_pp", "\u0394acc vs float32 (pp)", "+.2f"),
              ("agreement_ref", "agreement vs Keras", ".4f"), ("max_abs_diff_ref", "max |dp|", ".2e"),
              ("speedup", "speed-up vs float32", ".2f")]


def _device_row(doc: dict) -> dict:
    prov = doc.get("provenance") or {}
    dev, ver, s = prov.get("device") or {}, prov.get("versions") or {}, doc.get("settings") or {}
    src = prov.get("source_run") or {}
    return {"device": doc["_label"], "cpu": dev.get("cpu"), "arch": dev.get("arch"),
            "isa": dev.get("isa") or "-", "cores": dev.get("cores"), "threads": s.get("threads"),
            "images": (doc.get("data") or {}).get("count"),
            "runtimes": ", ".join(f"{k} {ver[k]}" for k in ("ai-edge-litert", "tflite-runtime",
                                                           "onnxruntime", "numpy") if k in ver),
            "git": (prov.get("git_commit") or "-")[:12],
            "source": src.get("dir") or "-"}


def render(docs: list[dict], rows: list[dict], plots: dict[str, str], max_drop_pt: float = MAX_DROP_PT) -> str:
    pairs, deltas, picks = act_pairs(rows), float_deltas(rows), ship(rows, max_drop_pt)
    ok = [r for r in rows if not r.get("error")]
    img = lambda key, alt: [f"![{alt}]({plots[key]})", ""] if key in plots else []
    md = ["# Edge benchmark report", "",
          f"{len(docs)} result file(s), {len({r['device'] for r in rows})} device(s); generated "
          f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by `python -m runtime.report`.",
          "Latency is one image per call (p50/p90, ms), throughput is batched (images/s); "
          "see docs/runtime.md for what each number covers.", "",
          "## Devices", "", markdown_table([_device_row(d) for d in docs], DEVICE_COLS), "",
          "## What to ship", "",
          f"Per device: the fastest model (single-image p50) whose test accuracy is within "
          f"{max_drop_pt:g} points of the best float32 build's there (`--max-drop`). Speed-up is "
          "against the device's fastest float32 build. One run's p50s: a gap of a few percent "
          "may be noise, so rerun the bench before acting on a close call.", "",
          markdown_table(picks, SHIP_COLS) if picks else "No model was measured.", "",
          "## Results", "", markdown_table(ok, RESULT_COLS) if ok else "No model was measured.", "",
          *img("latency_vs_accuracy", "latency vs accuracy"),
          "## TanhExp vs ReLU", ""]
    if pairs:
        md += ["Ratios are TanhExp / ReLU on the same device, format and precision "
               "(latency ratio > 1: TanhExp is slower).", "", markdown_table(pairs, PAIR_COLS), "",
               *img("tanhexp_vs_relu", "TanhExp vs ReLU latency ratio")]
    else:
        md += ["No pairs: the inputs do not hold both activations for the same device, "
               "format and precision.", ""]
    md += ["## Accuracy and agreement vs float", "",
           "\u0394acc is against the float32 build of the same device, activation and format; "
           "agreement and max |dp| are against the Keras float model (reference.npz).", ""]
    md += [markdown_table(deltas, DELTA_COLS), "", *img("deltas_vs_float", "deltas vs float")] \
        if deltas else ["No model was measured.", ""]
    failed = [r for r in rows if r.get("error")]
    if failed:
        md += ["## Failures", ""] + [f"- {r['device']} `{r['file']}`: {r['error']}" for r in failed] + [""]
    return "\n".join(md)


def write_report(paths, out_dir, with_plots: bool = True, max_drop_pt: float = MAX_DROP_PT) -> Path:
    docs = load_results(paths)
    rows = merge(docs)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out} is a file, not a folder")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        # Made in a scratch folder inside `out`, renamed into place only once all of it is
        # written: a full disk or a failing plot leaves an earlier report as it was.
        with tempfile.TemporaryDirectory(prefix=".report-", dir=out) as tmp:
            stage = Path(tmp)
            plots = {}
            if with_plots:
                from runtime import plots as P  # matplotlib lives behind this import
                plots = P.draw_all(rows, act_pairs(rows), float_deltas(rows), stage)
            write_text(stage / "report.md", render(docs, rows, plots, max_drop_pt))
            for f in sorted(stage.iterdir()):
                os.replace(f, out / f.name)
    except BaseException:
        if created and not any(out.iterdir()):
            out.rmdir()
        raise
    return out / "report.md"


def main(argv=None) -> int:
    p = Parser(prog="python -m runtime.report", description=__doc__.split("\n\n")[0])
    p.error = lambda msg: (print(f"error: {msg} (see --help)", file=sys.stderr), sys.exit(2))
    p.add_argument("results", nargs="+", metavar="RESULTS.json", help="edge-bench/1 files")
    p.add_argument("--out", required=True, metavar="DIR", help="where report.md and PNGs go")
    p.add_argument("--no-plots", action="store_true", help="markdown only (no matplotlib needed)")
    p.add_argument("--max-drop", type=float, default=MAX_DROP_PT, metavar="PT",
                   help="'What to ship' takes the fastest model within PT accuracy points of "
                        f"float32 (default {MAX_DROP_PT:g})")
    a = p.parse_args(argv)
    if not 0 <= a.max_drop < 100:
        p.error(f"--max-drop must be in [0, 100) points, got {a.max_drop:g}")
    try:
        path = write_report(a.results, a.out, not a.no_plots, a.max_drop)
    except BenchError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # reading failed earlier, as a BenchError: this is the writing
        print(f"error: cannot write the report to {a.out}: {e.strerror or one_line(e)}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
