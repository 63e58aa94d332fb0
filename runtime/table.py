"""Rows -> aligned text (stdout) or markdown tables; shared by bench and report."""
from __future__ import annotations


def _fmt(v, spec: str) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    return format(v, spec)


# (row key, heading, format spec)
BENCH_COLUMNS = [
    ("file", "model", ""), ("format", "fmt", ""), ("mode", "mode", ""),
    ("accuracy", "acc", ".4f"), ("agreement_ref", "agree", ".4f"),
    ("max_abs_diff_ref", "max|dp|", ".2e"), ("latency_ms_p50", "p50 ms", ".3f"),
    ("latency_ms_p90", "p90 ms", ".3f"), ("throughput_ips", "img/s", ".0f"),
    ("throughput_batch", "batch", "d"), ("load_ms", "load ms", ".1f"),
    ("peak_rss_mb", "rss MB", ".1f"), ("size_kb", "KB", ".1f"), ("overhead_pct", "ovh %", ".1f"),
]


def cells(rows, columns) -> list[list[str]]:
    return [[_fmt(r.get(k), spec) for k, _, spec in columns] for r in rows]


def text_table(rows, columns=BENCH_COLUMNS) -> str:
    head = [h for _, h, _ in columns]
    body = cells(rows, columns)
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    numeric = [bool(spec) for _, _, spec in columns]
    line = lambda cs: "  ".join(c.rjust(w) if n else c.ljust(w)
                                for c, w, n in zip(cs, widths, numeric)).rstrip()
    out = [line(head), line(["-" * w for w in widths])] + [line(c) for c in body]
    return "\n".join(out)


def markdown_table(rows, columns) -> str:
    head = [h for _, h, _ in columns]
    align = ["---:" if spec else ":---" for _, _, spec in columns]
    esc = lambda s: s.replace("|", "\\|")
    lines = ["| " + " | ".join(esc(h) for h in head) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in cells(rows, columns)]
    return "\n".join(lines)


def bench_summary(doc: dict) -> str:
    rows = doc["rows"]
    s = doc["settings"]
    prov = doc["provenance"]
    head = (f"{s['label']}: {prov['device']['cpu']} ({prov['device']['arch']}), "
            f"{s['threads']} thread(s), {doc['data']['count'] or 'synthetic'} images, "
            f"{'one process per model' if s['isolated'] else 'in-process'}")
    ok = [r for r in rows if not r["error"]]
    out = [head, "", text_table(ok) if ok else "(no model measured)"]
    full_split = s.get("limit") is None and doc["data"]["labels"]
    for r in rows:
        if r["error"]:
            out.append(f"FAILED {r['file']}: {r['error']}")
        elif full_split and None not in (r["accuracy"], r["parity_accuracy"]) \
                and abs(r["accuracy"] - r["parity_accuracy"]) > 0.5 / r["count"]:
            # docs/bundle.md: the bench must reproduce export's test_accuracy on the full split
            out.append(f"NOTE {r['file']}: accuracy {r['accuracy']:.4f} differs from the "
                       f"export parity {r['parity_accuracy']:.4f}")
        if not r["error"] and r.get("int8_arith") == "saturating" and r.get("mode") not in ("float32", "float16"):
            out.append(f"NOTE {r['file']}: ran ONNX Runtime's saturating int8 kernels (x86 without VNNI: "
                       "--int8-kernels fast, or its exact ones failed to build for this graph); its "
                       "answers are the runtime's, not the model's")
    return "\n".join(out)
