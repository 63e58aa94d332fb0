"""The `edge-bench/1` result schema: one flat row per model, units in the key names.

Every row has every key (null when not measured, e.g. after an error), so a consumer can
rely on the key set. Adding a key is compatible; renaming or changing a unit needs a new
schema version. docs/runtime.md documents each key; tests/runtime/test_schema.py pins them.
"""
from __future__ import annotations

BENCH_SCHEMA = "edge-bench/1"

_num = (int, float)
# key -> (JSON types allowed besides null, meaning)
ROW_FIELDS: dict[str, tuple[tuple, str]] = {
    "device": ((str,), "device label (--label, default host name)"),
    "file": ((str,), "model file name in the bundle, or the path given with --model"),
    "format": ((str,), "tflite | onnx"),
    "mode": ((str,), "float32 | float16 | dynamic | int8 | qat (from the manifest or file name)"),
    "act": ((str,), "activation of the source run (tanhexp | relu)"),
    "arch": ((str,), "architecture of the source run"),
    "size_kb": (_num, "model file size, KiB"),
    "sha256_ok": ((bool,), "manifest hash verified; false: not loaded; null: no hash to check"),
    "threads": ((int,), "runtime threads"),
    "isolated": ((bool,), "measured in a fresh process of its own"),
    "input_dtype": ((str,), "model input dtype, read from the model"),
    "input_layout": ((str,), "NHWC | NCHW"),
    "input_shape": ((list,), "model input shape, -1 for a dynamic dim"),
    "count": ((int,), "images evaluated"),
    "accuracy": (_num, "top-1 accuracy on the test images, 0..1"),
    "parity_accuracy": (_num, "test_accuracy export measured (manifest), full split"),
    "agreement_ref": (_num, "top-1 agreement with the Keras float reference, 0..1"),
    "mean_abs_diff_ref": (_num, "mean |p - p_ref| over images and classes"),
    "max_abs_diff_ref": (_num, "max |p - p_ref|"),
    "load_ms": (_num, "model load (+ tensor allocation / session creation), ms"),
    "latency_runs": ((int,), "single-image latency samples (warm-up excluded)"),
    "latency_ms_mean": (_num, "single-image latency, ms"),
    "latency_ms_std": (_num, "sample standard deviation, ms"),
    "latency_ms_min": (_num, "ms"),
    "latency_ms_p50": (_num, "ms"),
    "latency_ms_p90": (_num, "ms"),
    "latency_ms_p99": (_num, "ms"),
    "latency_ms_max": (_num, "ms"),
    "bare_ms_p50": (_num, "median of a bare invoke() loop on the same input, ms"),
    "overhead_pct": (_num, "(latency_ms_p50 / bare_ms_p50 - 1) * 100"),
    "throughput_batch": ((int,), "images per call for throughput (1: model is batch-1 only)"),
    "throughput_ips": (_num, "images per second at throughput_batch"),
    "peak_rss_mb": (_num, "peak resident memory of the measuring process, MiB"),
    "model_rss_mb": (_num, "peak RSS minus RSS before loading the model, MiB"),
    "int8_arith": ((str,), "exact | saturating (ONNX Runtime's u8s8 kernels on x86 without VNNI: "
                   "--int8-kernels fast, or exact ones it could not build); null: the runtime makes no such choice (LiteRT)"),
    "error": ((str,), "one line; set: the model was not (fully) measured"),
}


def new_row(art, device: str, threads: int, isolated: bool) -> dict:
    row = dict.fromkeys(ROW_FIELDS)
    size = None
    if art.path is not None:
        try:
            size = round(art.path.stat().st_size / 1024, 2)
        except OSError:
            pass
    row.update(device=device, file=art.file, format=art.format, mode=art.mode, act=art.act,
               arch=art.arch, size_kb=size, threads=threads, isolated=isolated,
               parity_accuracy=art.parity_accuracy)
    return row


def check_row(row: dict) -> list[str]:
    """Problems with a row against the schema (empty list: fine)."""
    bad = [f"missing {k}" for k in ROW_FIELDS if k not in row]
    bad += [f"unexpected {k}" for k in row if k not in ROW_FIELDS]
    for k, (types, _) in ROW_FIELDS.items():
        v = row.get(k)
        if v is not None and (not isinstance(v, types) or (isinstance(v, bool) and bool not in types)):
            bad.append(f"{k}: {type(v).__name__} {v!r}")
    return bad
