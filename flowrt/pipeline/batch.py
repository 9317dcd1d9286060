"""Restore a folder of images: plan the work (what to read, where to write, what to skip),
then run it image by image, reporting failures without stopping."""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Protocol, Tuple

from flowrt.errors import FlowrtError, InputError
from flowrt.io.formats import IMAGE_SUFFIXES
from flowrt.pipeline.output import OutputOptions, batch_output_name

log = logging.getLogger("flowrt.pipeline.batch")


class BatchProgress(Protocol):
    """What a batch reports as it goes (the CLI draws it: flowrt.cli.progress).
    iteration: None or callback(done, total) per MAP iteration of the current image."""
    iteration: Optional[Callable[[int, int], None]]

    def image_done(self, index: int, total: int, name: str, seconds: float, note: str) -> None: ...

    def close(self) -> None: ...


class _Silent:
    iteration = None

    def image_done(self, index: int, total: int, name: str, seconds: float, note: str) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class BatchJob:
    """pairs: (input, output) paths still to do; skipped: outputs that already existed;
    lossless: how many lossy inputs (JPEG, WebP) are written as PNG because no --format was given."""
    pairs: List[Tuple[Path, Path]]
    skipped: List[Path] = field(default_factory=list)
    lossless: int = 0

    @classmethod
    def plan(cls, input_dir: str, output_dir: str, *, recursive: bool = False,
             skip_existing: bool = False, output: OutputOptions = OutputOptions()) -> "BatchJob":
        src, dst = Path(input_dir).resolve(), Path(output_dir).resolve()
        if dst == src:
            raise InputError("the output folder must differ from the input folder (inputs are never overwritten)")
        if dst.exists() and not dst.is_dir():
            raise InputError(f"{output_dir} exists and is not a folder")
        candidates = src.rglob("*") if recursive else src.iterdir()
        files = sorted(p for p in candidates if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                       and dst not in p.parents)
        if not files:
            raise InputError(f"no PNG, JPEG, TIFF, WebP or BMP images in {input_dir}"
                             + ("" if recursive else " (try --recursive)"))
        job = cls([])
        for path, name in _output_names([p.relative_to(src) for p in files], output):
            out = dst / name
            job.lossless += int(output.format is None and out.suffix != path.suffix)
            path = src / path
            if skip_existing and out.exists():
                job.skipped.append(out)
            else:
                job.pairs.append((path, out))
        return job


def _output_names(relatives: List[Path], output: OutputOptions) -> List[Tuple[Path, Path]]:
    """(input, output) relative paths. A renamed output (new suffix) that another input's output
    also claims keeps its input's whole name: photo.jpg -> photo.jpg.png next to photo.png."""
    names = [batch_output_name(r, output) for r in relatives]
    claimed = {}
    for name in names:
        claimed[name] = claimed.get(name, 0) + 1
    return [(r, r.with_name(r.name + n.suffix) if n != r and claimed[n] > 1 else n) for r, n in zip(relatives, names)]


@dataclass
class BatchSummary:
    done: int = 0
    failed: List[Tuple[Path, str]] = field(default_factory=list)
    skipped: int = 0
    unchanged: int = 0     # of done: nothing to restore, written as they were
    lossless: int = 0      # lossy inputs written as PNG (no --format)

    def line(self) -> str:
        text = f"restored {self.done} image(s)"
        if self.unchanged:
            text += f" ({self.unchanged} clean, written unchanged; --force restores them)"
        if self.skipped:
            text += f", skipped {self.skipped} already done"
        if self.failed:
            text += f", {len(self.failed)} failed"
        if self.lossless:
            text += (f"; {self.lossless} JPEG/WebP input(s) written as PNG, lossless "
                     "(--format jpg or webp to keep a lossy format)")
        return text


def run_batch(job: BatchJob, opts, prior, *, device=None, bit_depth: Optional[int] = None,
              report: Callable[[str], None] = print, verbose: bool = False, tiling=None,
              model: str = "", output: OutputOptions = OutputOptions(),
              progress: Optional[BatchProgress] = None) -> BatchSummary:
    """Restore each pair; an error on one image (a FlowrtError, or an unexpected one, which is
    reported as an internal error) is reported and counted, and the rest go on.

    tiling: ``restore_tiled.TilingOptions`` (default: automatic, as ``flowrt restore``); large
    images are tiled exactly as ``flowrt restore`` tiles them. model: the prior's ``model_key``.
    output: format, quality, bit depth (``bit_depth`` overrides its). progress: told of every
    iteration and finished image (default: silent); closed at the end.
    """
    from flowrt.pipeline.run import TilingOptions, prepare_restore, run_restore

    tiling = tiling or TilingOptions()
    summary = BatchSummary(skipped=len(job.skipped), lossless=job.lossless)
    progress = progress or _Silent()
    try:
        for index, (src, dst) in enumerate(job.pairs, 1):
            start, note = time.monotonic(), ""
            try:
                with _output_folder(dst.parent):
                    work = prepare_restore(str(src), str(dst), opts, tiling, bit_depth=bit_depth, output=output)
                    if verbose:
                        report(f"{src.name}: {work.plan.nothing_to_do or work.plan.describe()}")
                    run_restore(work, prior, opts, device=device, model=model, on_iteration=progress.iteration)
                summary.done += 1
                if work.unchanged:
                    summary.unchanged += 1
                    note = "clean, written unchanged"
            except FlowrtError as exc:
                message = str(exc) if src.name in str(exc) else f"{src}: {exc}"
                summary.failed.append((src, message))
                report(f"failed: {message}")
                note = "failed"
            except Exception as exc:  # noqa: BLE001 - one image's crash must not lose the rest of a batch
                log.debug("%s failed", src, exc_info=True)  # the traceback, for -vv
                message = f"{src}: internal error ({type(exc).__name__}: {exc})"
                summary.failed.append((src, message))
                report(f"failed: {message}")
                note = "failed"
            progress.image_done(index, len(job.pairs), src.name, time.monotonic() - start, note)
    finally:
        progress.close()
    return summary


@contextlib.contextmanager
def _output_folder(folder: Path):
    """Create ``folder`` (and missing parents) for one image; remove what was created if it fails."""
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for path in created:  # deepest first; a folder something else filled meanwhile stays
            try:
                path.rmdir()
            except OSError:
                break
        raise
