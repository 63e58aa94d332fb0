"""`export(cfg)`: the whole export as one importable function (the CLI is a thin wrapper).

For each requested mode: convert to a temporary name in the bundle folder, check the op
allow-list, validate with the device runtime, read the I/O description back from the file,
measure parity on the full test split, and only then rename it into place and add it to
manifest.json. Any failure removes that temporary file and leaves the bundle as it was.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from export import manifest as bundle
from export import opcheck
from export.config import ExportConfig
from export.errors import BadInput, ExportError, ExportFailed, one_line
from export.run import Job, fit_images, input_size, load_model, load_splits, open_model_file, open_run
from runtime.fileio import atomic_path, sha256_file


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _display(path: Path) -> str:
    """A run path as people wrote it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def prepare_out(out: Path) -> bool:
    """Create `out` if needed and prove it writable now, before minutes of work. Returns
    whether it was created (so a failed first export can remove it again)."""
    existed = out.is_dir()
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise BadInput(f"cannot write to output folder {out}: {e.strerror or one_line(e)}") from None
    return not existed


def remove_killed_leftovers(out: Path) -> None:
    """Temporary files a killed export left (kill -9 skips atomic_path's cleanup), by the names
    only an export writes. Exports into one folder run one at a time (manifest.json is read,
    updated and rewritten), so none of these is still being written."""
    from export.formats import FORMATS, file_name
    names = [file_name(f, m) for f in FORMATS for m in FORMATS[f]]
    for name in names + [bundle.MANIFEST, bundle.TEST, bundle.REFERENCE, bundle.CONFIG]:
        for p in out.glob(f".{name}.*.tmp"):
            p.unlink(missing_ok=True)


def export_one(job: Job, fmt: str, mode: str, out: Path, ref, splits, log=_log, before_commit=None) -> dict:
    """Convert, verify and measure one artifact; return its manifest entry (file in place).
    `before_commit(name)` runs after every check passed, just before the file is renamed in."""
    from export.formats import BATCH_DEPENDENT, FORMATS, READERS, file_name
    from export.parity import compare
    reader, name = READERS[fmt], file_name(fmt, mode)
    t0 = time.perf_counter()
    try:
        with atomic_path(out / name) as tmp:
            extras = FORMATS[fmt][mode](job, tmp)
            seconds = time.perf_counter() - t0
            ops = reader.ops(tmp)
            opcheck.check(fmt, ops, name)
            reader.validate(tmp)
            io = reader.describe(tmp)
            t1 = time.perf_counter()
            batch = 1 if (fmt, mode) in BATCH_DEPENDENT else job.cfg.parity_batch
            probs, used = reader.predict(tmp, splits.x_test, batch, job.normalization, job.outputs)
            parity = {**compare(probs, ref, splits.y_test), "batch": used}
            parity_s = time.perf_counter() - t1
            if before_commit is not None:
                before_commit(name)
    except ExportError as e:
        raise type(e)(f"{fmt}/{mode}: {e}") from e
    except Exception as e:  # converters raise anything from ConverterError to protobuf errors
        raise ExportFailed(f"{fmt}/{mode}: {type(e).__name__}: {one_line(e)}") from e
    path = out / name
    entry = {"file": name, "format": fmt, "mode": mode, "sha256": sha256_file(path),
             "size_bytes": path.stat().st_size, "input": io["input"], "output": io["output"],
             "ops": opcheck.unique(ops), "op_counts": opcheck.counts(ops),
             "lowering": extras.pop("lowering", None), "export_seconds": round(seconds, 2),
             **({"lowering_fit": fit} if (fit := job.lowering(mode, fmt) and job.lowering_fit(mode, fmt)) else {}),
             **({"transposes": ops.count("Transpose")} if fmt == "onnx" else {}),
             **extras, "parity": parity}
    log(f"{fmt}/{mode}: wrote {path} ({entry['size_bytes'] / 1024:.1f} KB) in {seconds:.1f} s; "
        f"{len(ops)} ops, all allowed; test accuracy {parity['test_accuracy']:.4f}, agreement "
        f"{parity['agreement'] * 100:.2f} %, max |dp| {parity['max_abs_diff']:.2e} ({parity_s:.1f} s)")
    return entry


def export(cfg: ExportConfig, log=_log) -> dict:
    """Export cfg.format in cfg.modes() from a run folder into a bundle; return the manifest."""
    cfg.validate()
    run = open_model_file(cfg.model, cfg.data) if cfg.model else open_run(cfg.run, cfg.runs_root)
    out = Path(cfg.out) if cfg.out else \
        (run.model_path.parent / f"{run.model_path.name.replace('.', '-')}-export" if run.brought else run.dir / "export")
    manifest = bundle.read_existing(out, run) if (out / bundle.MANIFEST).exists() else None
    created = prepare_out(out)
    remove_killed_leftovers(out)
    try:
        return _export(cfg, run, out, manifest, log)
    finally:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a first export that failed leaves no trace, not even the folder


def _export(cfg: ExportConfig, run, out: Path, manifest: dict | None, log) -> dict:
    from export.parity import keras_probs
    from runtime.backends import output_kind, softmax
    if run.brought:  # the model first: its input size is what an image folder of mixed sizes becomes
        log(f"export {cfg.format} {' '.join(cfg.modes())} of {run.model_path} -> {out}")
        model = load_model(run.model_path)
        splits = load_splits(run, input_size(model))
    else:
        splits = load_splits(run)  # before TensorFlow: a data problem is reported in a second
        log(f"export {cfg.format} {' '.join(cfg.modes())} of {run.dir} -> {out}")
        model = load_model(run.model_path)
    outputs_n = model.output_shape[-1] if isinstance(model.output_shape, tuple) else None
    if outputs_n is not None and outputs_n != len(splits.classes):
        raise BadInput(f"the model outputs {outputs_n} classes; the data has {len(splits.classes)} "
                       f"({', '.join(splits.classes)})")
    resized = fit_images(splits, model)
    if resized:
        was = "images of mixed sizes" if resized["from"] == "mixed" else f"images of {resized['from'][0]}x{resized['from'][1]}"
        log(f"{was} resized to the model's {resized['to'][0]}x{resized['to'][1]}: {resized['method']}")
    normalization = cfg.normalization()
    if cfg.tflite_float_layers:  # a misspelt layer fails now, not after the float modes' minutes
        from export.tflite_select import check_layers
        check_layers(model, cfg.tflite_float_layers)
    ref = keras_probs(model, splits.x_test, normalization=normalization)
    # A logits head is compared as probabilities: the same softmax on the Keras outputs here and
    # on every exported file's outputs in its backend (export and device alike).
    outputs = output_kind(ref)
    if outputs == "logits":
        ref = softmax(ref)
        log("the model outputs logits: parity and the device compare softmax(logits)")
    keras_acc = float((ref.argmax(1) == splits.y_test).mean())
    log(f"keras float model: test accuracy {keras_acc:.4f} on {len(splits.y_test)} images")
    manifest = manifest or bundle.new(splits.classes, splits.x_test.shape[1:], normalization)
    manifest["outputs"] = outputs
    if manifest["input"].get("normalization") != bundle.normalization_entry(normalization):
        raise BadInput(f"{out} holds an export with another input normalization "
                       f"({manifest['input'].get('normalization')}); choose another --out or remove it")
    if resized:  # said only when done; a run folder's manifest stays as it was
        manifest["input"]["resized"] = resized
    manifest["source_run"] = bundle.source_run(run, keras_acc, _display(run.model_path if run.brought else run.dir),
                                               splits.source)
    shared = False
    with tempfile.TemporaryDirectory(prefix="edgecnn-export-") as work:
        job = Job(cfg, run, model, splits, Path(work), normalization=normalization, outputs=outputs)

        def unlist(name: str) -> None:
            # Re-exporting replaces a listed file: unlist it first, so that at no instant (kill -9
            # included) does the manifest name bytes it did not measure; a kill loses one entry.
            if any(a.get("file") == name for a in manifest["artifacts"]):
                manifest["artifacts"] = [a for a in manifest["artifacts"] if a.get("file") != name]
                bundle.write(out, manifest)

        for mode in cfg.modes():
            entry = export_one(job, cfg.format, mode, out, ref, splits, log, before_commit=unlist)
            if not shared:  # only once something is worth indexing
                bundle.write_shared(out, manifest, splits.x_test, splits.y_test, ref,
                                    {**cfg.to_dict(), "quant": cfg.modes(), "run": str(run.dir), "out": str(out)})
                shared = True
            bundle.upsert(manifest, entry)
            bundle.write(out, manifest)
    return manifest
