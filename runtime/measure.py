"""Measure one model (`measure_artifact`) and a whole run (`run_bench`). No CLI here.

Per model, in this order: load (timed), one pass over the test images in batches (accuracy,
agreement and |dp| vs the Keras reference; also warms caches), single-image latency
interleaved with a bare `invoke()` loop (bench overhead), then batched throughput.

What a latency sample covers: copying one already-prepared image into the model's input,
invoke, copying the output out. Normalization/quantization/transposition is done for all
images up front (vectorized), because on a device it is a one-off per frame that a camera
pipeline does in its own way, and because per-call numpy work would swamp tiny models.
"""
from __future__ import annotations

import gc
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from runtime import sysmem
from runtime.backends import INT8_KERNELS, OUTPUTS, get_backend, guess_layout
from runtime.bundle import Artifact, Inputs, bare_artifacts, load_bundle, load_reference, load_test, verify
from runtime.errors import BenchError, ModelError, one_line
from runtime.imagefolder import RESIZE, resize_images
from runtime.provenance import provenance
from runtime.schema import BENCH_SCHEMA, new_row

SYNTHETIC_SEED = 0


@dataclass
class BenchConfig:
    bundle: str | None = None          # a bundle directory, or
    models: list[str] = field(default_factory=list)  # bare model files
    data: str | None = None            # test.npz for bare models (x, optional y)
    reference: str | None = None       # reference.npz (probs) for bare models
    formats: list[str] | None = None   # keep only these formats / modes
    modes: list[str] | None = None
    limit: int | None = None           # first N test images
    threads: int = 1
    warmup: int = 10
    runs: int = 100                    # latency samples, unless min_seconds is set
    min_seconds: float | None = None
    batch: int = 32                    # images per call for accuracy and throughput
    isolate: bool = True               # one fresh process per model (peak RSS, crash safety)
    timeout: float | None = None       # per model, isolated runs only
    label: str | None = None           # device label for reports; default: host name
    synthetic: int = 100               # images to synthesize for a bare model without data
    int8_kernels: str = "auto"         # INT8_KERNELS: exact integer arithmetic where a runtime's fast kernels saturate
    input_shape: list[int] | None = None  # bare models: the input shape, fixing a model's dynamic dims
    layout: str | None = None          # bare models: NHWC or NCHW, overriding what the model's shape suggests
    normalization: tuple | None = None  # bare models: (scale, offset) from uint8 pixels; None: / 255
    outputs: str | None = None         # bare models: "logits" applies softmax (OUTPUTS); None: probabilities

    def check(self) -> None:
        if bool(self.bundle) == bool(self.models):
            raise BenchError("give either a bundle or model files, not both or neither")
        for name in ("threads", "runs", "batch", "synthetic"):
            if getattr(self, name) < 1:
                raise BenchError(f"{name} must be >= 1")
        if self.warmup < 0 or (self.limit is not None and self.limit < 1):
            raise BenchError("warmup must be >= 0 and limit >= 1")
        if self.min_seconds is not None and not self.min_seconds > 0:
            raise BenchError("min_seconds must be > 0")
        if self.input_shape is not None and (len(self.input_shape) != 4 or min(self.input_shape) < 1):
            raise BenchError(f"--input-shape wants 4 positive dims (N,H,W,C or N,C,H,W), got {self.input_shape}")
        if self.layout not in (None, "NHWC", "NCHW"):
            raise BenchError(f"--layout must be NHWC or NCHW, got {self.layout!r}")
        if self.bundle and (self.input_shape or self.layout or self.normalization or self.outputs):
            raise BenchError("--input-shape, --layout, --outputs and the normalization options go with "
                             "--model; a bundle's manifest says them")
        if self.outputs not in (None, *OUTPUTS):
            raise BenchError(f"--outputs must be one of {', '.join(OUTPUTS)}, got {self.outputs!r}")
        if self.int8_kernels not in INT8_KERNELS:
            raise BenchError(f"int8_kernels must be one of {', '.join(INT8_KERNELS)}, got {self.int8_kernels!r}")


@dataclass
class Data:
    x: np.ndarray | None               # uint8 NHWC; None: synthesize from the model's shape
    y: np.ndarray | None
    ref: np.ndarray | None


@dataclass
class Job:
    """Everything needed to measure one artifact, JSON-serializable for a child process."""
    artifact: Artifact
    config: BenchConfig
    test_path: str | None
    reference_path: str | None
    reference_key: str
    normalization: tuple[float, float]
    label: str
    outputs: str = "probabilities"     # OUTPUTS: "logits" get a softmax in the backend
    fit_images: bool = False           # images from a folder: resized to a model of another size

    def to_dict(self) -> dict:
        d = asdict(self)
        d["artifact"]["path"] = str(self.artifact.path) if self.artifact.path else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Job":
        a = dict(d["artifact"])
        a["path"] = Path(a["path"]) if a["path"] else None
        for k in ("input_quant", "output_quant"):
            a[k] = tuple(a[k]) if a[k] else None
        return cls(Artifact(**a), BenchConfig(**d["config"]), d["test_path"], d["reference_path"],
                   d["reference_key"], tuple(d["normalization"]), d["label"], d["outputs"], d["fit_images"])


def load_data(job: Job) -> Data:
    if job.test_path is None:
        return Data(None, None, None)
    x, y = load_test(Path(job.test_path), job.config.limit)
    ref = load_reference(Path(job.reference_path), job.reference_key, len(x)) \
        if job.reference_path else None
    return Data(x, y, ref)


def _ms(ns) -> np.ndarray:
    return np.asarray(ns, dtype=np.float64) / 1e6


def latency_stats(ns) -> dict:
    ms = _ms(ns)
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    r = lambda v: round(float(v), 5)
    return {"latency_runs": len(ms), "latency_ms_mean": r(ms.mean()),
            "latency_ms_std": r(ms.std(ddof=1) if len(ms) > 1 else 0.0),
            "latency_ms_min": r(ms.min()), "latency_ms_p50": r(p50), "latency_ms_p90": r(p90),
            "latency_ms_p99": r(p99), "latency_ms_max": r(ms.max())}


def compare(p: np.ndarray, q: np.ndarray) -> tuple[float, float, float]:
    """Top-1 agreement, mean and max |p - q| over images and classes."""
    d = np.abs(p.astype(np.float64) - q)
    return float(np.mean(p.argmax(1) == q.argmax(1))), float(d.mean()), float(d.max())


def time_latency(backend, singles: np.ndarray, cfg: BenchConfig) -> tuple[list, list]:
    """Bench-path and bare-invoke samples (ns), measured in alternating blocks so that drift
    on a shared machine (thermal throttling, neighbours) hits both alike."""
    infer, invoke, clock = backend.infer, backend.invoke_raw, time.perf_counter_ns
    k = len(singles)
    for j in range(cfg.warmup):
        infer(singles[j % k])
    bench, bare = [], []
    block = max(1, math.ceil(cfg.runs / 5)) if cfg.min_seconds is None else 20
    budget = None if cfg.min_seconds is None else cfg.min_seconds * 1e9
    spent = 0
    while True:
        n = block if budget is not None else min(block, cfg.runs - len(bench))
        start = len(bench)
        for j in range(start, start + n):
            x = singles[j % k]
            t0 = clock()
            infer(x)
            bench.append(clock() - t0)
        backend.set_input(singles[0])
        for _ in range(n):
            t0 = clock()
            invoke()
            bare.append(clock() - t0)
        spent += sum(bench[start:])
        if (budget is not None and spent >= budget) or (budget is None and len(bench) >= cfg.runs):
            return bench, bare


def time_throughput(backend, images: np.ndarray, cfg: BenchConfig) -> tuple[int, float] | None:
    """(batch, images/s) with `cfg.batch` images per call; None if the model is batch-1 only."""
    b = cfg.batch
    if b < 2 or not backend.set_batch(b):
        return None
    idx = np.arange(b) % len(images)
    xb = backend.prepare(images[idx])
    infer = backend.infer
    infer(xb)  # first call after a resize allocates
    calls = max(2, math.ceil(cfg.runs / b))
    t0 = time.perf_counter()
    done = 0
    while True:
        infer(xb)
        done += 1
        dt = time.perf_counter() - t0
        if done >= calls and (cfg.min_seconds is None or dt >= cfg.min_seconds):
            return b, done * b / dt


def measure_artifact(job: Job, data: Data | None = None, isolated: bool = False):
    """One model -> (row, probs or None). Never raises for a problem with the model."""
    art, cfg = job.artifact, job.config
    row = new_row(art, job.label, cfg.threads, isolated)
    backend = None
    try:
        cls = get_backend(art.format)  # import the runtime before the memory baseline
        data = data if data is not None else load_data(job)
        base = sysmem.rss_mb()
        peak_reset = sysmem.reset_peak()
        t0 = time.perf_counter()
        backend = cls.load(art.path, cfg.threads, job.normalization, art.layout,
                           art.input_quant, art.output_quant, cfg.int8_kernels)
        row["load_ms"] = round((time.perf_counter() - t0) * 1e3, 3)
        if cfg.layout:
            backend.layout = cfg.layout
        backend.outputs = job.outputs
        row["int8_arith"] = backend.int8_arith
        row.update(input_dtype=np.dtype(backend.input.dtype).name, input_layout=backend.layout,
                   input_shape=[d if d is not None else -1 for d in backend.input.shape])
        x = data.x if data.x is not None else synthetic(fixed_shape(backend, cfg.input_shape), cfg)
        if job.fit_images:
            x = fit_to_model(x, backend, cfg.input_shape)
        backend.check_images(x.shape[1:])

        probs = backend.run(x, art.parity_batch or cfg.batch)
        if probs.shape != (len(x), probs.shape[1]) or not np.all(np.isfinite(probs)):
            raise ModelError(f"model output {probs.shape} is not finite probabilities per image")
        row["count"] = len(x)
        if data.y is not None and len(data.y) and int(data.y.max()) >= probs.shape[1]:
            raise ModelError(f"the labels go up to class {int(data.y.max())}, but the model outputs "
                             f"{probs.shape[1]} classes")
        if data.y is not None:
            row["accuracy"] = float(np.mean(probs.argmax(1) == data.y))
        if data.ref is not None:
            if data.ref.shape != probs.shape:
                raise ModelError(f"output {probs.shape} does not match reference {data.ref.shape}")
            a, mean_d, max_d = compare(probs, data.ref)
            row.update(agreement_ref=a, mean_abs_diff_ref=mean_d, max_abs_diff_ref=max_d)

        backend.set_batch(1)
        singles = backend.prepare(x[:min(len(x), 100)])[:, None]
        bench, bare = time_latency(backend, singles, cfg)
        row.update(latency_stats(bench))
        bare_p50 = float(np.median(_ms(bare)))
        row["bare_ms_p50"] = round(bare_p50, 5)
        row["overhead_pct"] = round((row["latency_ms_p50"] / bare_p50 - 1) * 100, 2) if bare_p50 > 0 else None

        tp = time_throughput(backend, x, cfg)
        batch, ips = tp if tp else (1, 1e3 / row["latency_ms_mean"])
        row.update(throughput_batch=batch, throughput_ips=round(ips, 2))

        peak = sysmem.peak_rss_mb()
        row["peak_rss_mb"] = None if peak is None else round(peak, 2)
        if peak is not None and base is not None and (peak_reset or isolated):
            row["model_rss_mb"] = round(max(0.0, peak - base), 2)
        return row, probs
    except ModelError as e:
        row["error"] = one_line(e)
    except MemoryError:
        row["error"] = "out of memory"
    except Exception as e:  # a runtime's own error for a bad model: report it, keep going
        row["error"] = one_line(e)
    finally:
        if backend is not None:
            backend.close()
        del backend
        gc.collect()
    return row, None


def fixed_shape(backend, input_shape) -> tuple:
    """(H, W, C) of the images to feed: the model's, with --input-shape filling its dynamic dims
    (and checked against its fixed ones)."""
    hwc = backend.image_shape
    if input_shape is None:
        return hwc
    n, *rest = input_shape
    want = tuple(rest) if backend.layout == "NHWC" else (rest[1], rest[2], rest[0])
    clash = [(w, m) for w, m in zip(want, hwc) if m is not None and w != m]
    if clash:
        raise ModelError(f"--input-shape {list(input_shape)} does not fit the model's input "
                         f"{backend.layout} {[d if d is not None else -1 for d in backend.input.shape]}")
    return want


def fit_to_model(x: np.ndarray, backend, input_shape=None) -> np.ndarray:
    """Folder images resized to the model's (H, W), where it fixes them (RESIZE)."""
    h, w, _ = fixed_shape(backend, input_shape)
    return x if None in (h, w) else resize_images(x, h, w)


def folder_data(folder: Path, arts: list[Artifact], cfg: BenchConfig, workdir: Path) -> tuple[Path, dict]:
    """An image folder's test split (runtime.imagefolder: its test/ folder, or the seeded split of
    a single folder, the same images export held out) as a test .npz in `workdir`, read once for
    every model; what was read, for the result document."""
    from runtime.imagefolder import read

    def size():  # only asked for if the images differ in size
        if cfg.input_shape:
            shape = tuple(cfg.input_shape)
            return shape[1:3] if (cfg.layout or guess_layout(shape)) == "NHWC" else shape[2:4]
        for a in arts:
            try:
                b = get_backend(a.format).load(a.path, 1)
                h, w, _ = b.image_shape
                b.close()
            except Exception:  # noqa: BLE001  (its own row will say what is wrong with it)
                continue
            if None not in (h, w):
                return h, w
        raise BenchError(f"{folder}: images of different sizes and no model of fixed size; pass --input-shape")

    (_, _, x, y), info = read(str(folder), size)
    path = workdir / "folder-test.npz"
    with open(path, "wb") as f:
        np.savez(f, x=x, y=y)
    return path, {"folder": str(folder), "classes": info["classes"], "split": info["split"],
                  "resized": info["resized"], "resize": RESIZE}


def synthetic(hwc: tuple, cfg: BenchConfig) -> np.ndarray:
    if any(d is None for d in hwc):
        raise ModelError(f"model input {hwc} (HWC) has dynamic image dims; pass --input-shape or --data")
    n = cfg.limit or cfg.synthetic
    return np.random.default_rng(SYNTHETIC_SEED).integers(0, 256, (n, *hwc), dtype=np.uint8)


@dataclass
class BenchResult:
    doc: dict
    probs: dict[str, np.ndarray]


def select(inputs: Inputs, cfg: BenchConfig) -> list[Artifact]:
    arts = [a for a in inputs.artifacts
            if (not cfg.formats or a.format in cfg.formats) and (not cfg.modes or a.mode in cfg.modes)]
    if not arts:
        raise BenchError("nothing to benchmark: no artifact matches the --formats/--modes filters")
    return arts


def run_bench(cfg: BenchConfig, progress=None) -> BenchResult:
    """Measure every selected model. Raises BenchError for run-level problems only.
    `progress(iterable, total)` wraps the model loop (runtime.progress.progress)."""
    from runtime import isolate  # noqa: PLC0415  (isolate imports this module)

    cfg.check()
    inputs = load_bundle(cfg.bundle) if cfg.bundle else bare_artifacts(cfg.models, cfg.data, cfg.reference)
    if cfg.normalization is not None:
        inputs.normalization = tuple(cfg.normalization)
    arts = select(inputs, cfg)
    label = cfg.label or platform.node() or "device"
    with isolate.workdir() as tmp:
        folder = None
        if inputs.folder is not None:
            inputs.test_path, folder = folder_data(inputs.folder, arts, cfg, Path(tmp))
            inputs.classes = folder["classes"]
        jobs = [Job(a, cfg, str(inputs.test_path) if inputs.test_path else None,
                    str(inputs.reference_path) if inputs.reference_path else None,
                    inputs.reference_key, inputs.normalization, label,
                    cfg.outputs or inputs.outputs, folder is not None) for a in arts]
        data = load_data(jobs[0])  # run-level checks of the data happen here, before any model
        return _measure_all(cfg, inputs, jobs, data, folder, label, tmp, progress)


def _measure_all(cfg, inputs, jobs, data, folder, label, tmp, progress) -> BenchResult:
    """Each job in its own child process (or here), then the result document."""
    from runtime import isolate  # noqa: PLC0415  (isolate imports this module)
    rows, probs = [], {}
    use_child = cfg.isolate
    wrap = progress or (lambda it, total: it)
    for i, job in enumerate(wrap(jobs, len(jobs))):
        sha_ok, problem = verify(job.artifact)
        if problem:
            row, p = new_row(job.artifact, label, cfg.threads, False), None
            row["error"] = problem
        elif use_child:
            try:
                row, p = isolate.measure_in_child(job, tmp, i)
            except isolate.Unavailable:
                use_child = False  # e.g. under qemu-user without binfmt: cannot exec self
                row, p = measure_artifact(job, data)
        else:
            row, p = measure_artifact(job, data)
        row["sha256_ok"] = sha_ok
        rows.append(row)
        if p is not None:
            probs[row["file"]] = p
    names = list(probs)
    matrix = [[round(compare(probs[a], probs[b])[0], 6) if len(probs[a]) == len(probs[b]) else None
               for b in names] for a in names]
    doc = {
        "schema": BENCH_SCHEMA,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "provenance": provenance(source_run=inputs.source_run,
                                 bundle=str(inputs.bundle_dir) if inputs.bundle_dir else None),
        "settings": {**asdict(cfg), "label": label, "isolated": use_child},
        "data": {"source": "synthetic" if data.x is None else (folder or {}).get("folder", str(inputs.test_path)),
                 **({"folder_split": folder["split"], "resized": folder["resized"]} if folder else {}),
                 "count": None if data.x is None else len(data.x),
                 "labels": data.y is not None, "reference": data.ref is not None,
                 "classes": inputs.classes},
        "agreement": {"files": names, "top1": matrix},
        "rows": rows,
    }
    return BenchResult(doc, probs)
