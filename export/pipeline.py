"""``flowrt export`` end to end: checkpoint -> staged graphs + weights -> verification -> published folder.

Everything is written into a hidden staging folder beside the target and moved into place only
after verification passed, manifest last; a failure leaves the target as it was, except that a
re-export removes the old manifest first, so the folder never claims graphs it does not hold.
"""
from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from flowrt.errors import InputError, ModelError
from flowrt.prior.folders import (GRADIENT_FILES, MANIFEST_NAME, MODEL_FILES, TORCH_WEIGHTS, check_files,
                                  listed_files, load_torch_prior, open_model_dir)
from flowrt.train.checkpoint import FORMAT, atomic_save, load_model
from flowrt.train.config import to_dict

from .manifest import build_manifest, write_manifest
from .grad_export import export_gradient_graphs
from .onnx_export import DEFAULT_OPSET, EXPORTERS, export_graphs
from .verify import Graphs, Report, verify_folder

TIMING_SIZE = (256, 384)


class ExportError(ModelError):
    """Export or verification failed; ``report`` holds the figures when verification ran."""

    def __init__(self, message: str, report: Optional[Report] = None):
        super().__init__(message)
        self.report = report


def default_out_dir(checkpoint: Union[str, Path]) -> Path:
    """runs/x/last.pt -> runs/x/last-onnx."""
    path = Path(checkpoint)
    return path.with_name(f"{path.stem}-onnx")


def time_graphs(folder: Path, height: int, width: int, repeats: int = 3) -> dict:
    """Median ms of one forward and one inverse pass at (1, 3, height, width), after a warm-up."""
    graphs = Graphs(folder)
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, height, width)).astype(np.float32)
    u = graphs.encode(x)[0]
    result = {"size": f"{height}x{width}", "providers": graphs.providers}
    for name, run, arg in (("forward_ms", graphs.encode, x), ("inverse_ms", graphs.decode, u)):
        run(arg)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run(arg)
            times.append(1000 * (time.perf_counter() - start))
        result[name] = round(statistics.median(times), 1)
    return result


def publish(staging: Path, out: Path) -> None:
    """Move the staged files into ``out``; the manifest lands last."""
    if not out.exists():
        os.replace(staging, out)
        return
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    for name in MODEL_FILES:
        os.replace(staging / name, out / name)
    for name in GRADIENT_FILES:  # a re-export without gradients must not leave stale ones behind
        if (staging / name).is_file():
            os.replace(staging / name, out / name)
        else:
            (out / name).unlink(missing_ok=True)
    os.replace(staging / MANIFEST_NAME, out / MANIFEST_NAME)


def _check_target(checkpoint: Path, out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} exists and is not a folder")
    if (out / TORCH_WEIGHTS).resolve() == checkpoint.resolve():
        raise InputError(f"exporting into {out} would overwrite the input checkpoint {checkpoint}; choose another -o")


def export_checkpoint(checkpoint: Union[str, Path], out_dir: Optional[Union[str, Path]] = None,
                      opset: int = DEFAULT_OPSET, fp16: bool = False,
                      exporter: str = "torchscript",
                      gradients: Union[bool, Sequence[str]] = False) -> Tuple[Path, Report]:
    """Export, verify and publish ``checkpoint``; returns (folder, report). ExportError on failure.

    ``gradients`` also writes and verifies gradient graphs (grad_export.py; a minute or more each on
    2 cores): True for both, or the names to write, e.g. (PRIOR_GRAD_ONNX,).
    """
    if exporter not in EXPORTERS:
        raise InputError(f"exporter must be one of {', '.join(EXPORTERS)}, not {exporter!r}")
    checkpoint = Path(checkpoint)
    model, cfg = load_model(str(checkpoint))
    out = Path(out_dir) if out_dir is not None else default_out_dir(checkpoint)
    _check_target(checkpoint, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".staging", dir=out.parent))
    os.chmod(staging, 0o755)  # mkdtemp makes it 0700; it may become the published folder itself
    precision = "float16" if fp16 else "float32"
    try:
        try:
            export_graphs(model, staging, opset=opset, fp16=fp16, exporter=exporter)
            if gradients:
                export_gradient_graphs(model, staging, opset, GRADIENT_FILES if gradients is True else gradients)
        except Exception as exc:  # torch.onnx raises many types; none is the user's to debug
            raise ExportError(f"ONNX export failed ({exporter}, opset {opset}): {str(exc).splitlines()[0][:200]}") from None
        atomic_save({"format": FORMAT, "config": to_dict(cfg), "model": model.state_dict()}, staging / TORCH_WEIGHTS)
        os.chmod(staging / TORCH_WEIGHTS, 0o644)  # packaged as data: readable by every user
        report = verify_folder(staging, model, precision)
        if not report.passed:
            raise ExportError(_failure_message(report, "nothing written"), report)
        graphs = {"precision": precision, "opset": opset, "exporter": exporter,
                  "ir_version": _ir_version(staging)}
        verification = dict(report.to_dict(), timing=time_graphs(staging, *TIMING_SIZE))
        write_manifest(staging, build_manifest(to_dict(cfg), graphs, verification, staging, str(checkpoint)))
        publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out, report


def reverify(model_dir: Union[str, Path]) -> Report:
    """Re-run verification on an exported folder (hashes first); ExportError if a check fails."""
    folder, manifest = open_model_dir(str(model_dir), MODEL_FILES)
    check_files(folder, manifest, listed_files(manifest)[len(MODEL_FILES):])  # the gradient graphs it lists
    report = verify_folder(folder, load_torch_prior(folder), str(manifest["precision"]))
    if not report.passed:
        raise ExportError(_failure_message(report, f"{folder} does not reproduce its model.pt"), report)
    return report


def _failure_message(report: Report, consequence: str) -> str:
    failed = report.failures()
    first = failed[0]
    return (f"verification failed ({len(failed)} of {len(report.checks)} checks; {consequence}): "
            f"{first.name} is {first.value:.3g} {first.unit}, limit {first.limit:.3g}")


def _ir_version(folder: Path) -> int:
    import onnx

    from flowrt.prior.folders import FORWARD_ONNX
    return int(onnx.load(str(folder / FORWARD_ONNX), load_external_data=False).ir_version)
