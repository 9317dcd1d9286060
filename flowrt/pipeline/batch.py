"""Restore a folder of images: plan the work (what to read, where to write, what to skip),
then run it image by image, reporting failures without stopping."""
from __future__ import annotations

import contextlib
import errno
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Protocol, Tuple

from flowrt import interrupts
from flowrt.errors import FlowrtError, InputError, storage_error, was_interrupted
from flowrt.io.formats import IMAGE_SUFFIXES
from flowrt.pipeline.output import OutputOptions, batch_output_name

log = logging.getLogger("flowrt.pipeline.batch")


class BatchProgress(Protocol):
    """What a batch reports as it goes (the CLI draws it: flowrt.cli.progress).
    step: None or callback(stage, done, total) per step of each phase of the current image
    (``RestorationPlan.stages``: denoise, split rounds, MAP iterations)."""
    step: Optional[Callable[[str, int, int], None]]

    def image_done(self, index: int, total: int, name: str, seconds: float, note: str) -> None: ...

    def close(self) -> None: ...


class _Silent:
    step = None

    def image_done(self, index: int, total: int, name: str, seconds: float, note: str) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class BatchJob:
    """pairs: (input, output) paths still to do; skipped: (input, output) pairs whose output exists and
    is whole (--skip-existing);
    unreadable: (path, one-line reason) for image names that are no file (a dangling or looping link);
    lossless: how many lossy inputs (JPEG, WebP) are written as PNG because no --format was given."""
    pairs: List[Tuple[Path, Path]]
    skipped: List[Tuple[Path, Path]] = field(default_factory=list)
    unreadable: List[Tuple[Path, str]] = field(default_factory=list)
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
        named = sorted(p for p in candidates if p.suffix.lower() in IMAGE_SUFFIXES and dst not in p.parents)
        job = cls([])
        files = []
        for path in named:
            reason = _not_a_file(path)
            if reason is None:
                files.append(path)
            elif reason:  # a folder named like an image is passed over; a broken link is reported
                job.unreadable.append((path, f"{path}: {reason}"))
        for path, name in _output_names([p.relative_to(src) for p in files], output):
            out = dst / name
            job.lossless += int(output.format is None and out.suffix != path.suffix)
            path = src / path
            if skip_existing and out.exists() and _finished(out):
                job.skipped.append((path, out))
            else:
                job.pairs.append((path, out))
        if not job.pairs and not job.skipped and not job.unreadable:
            raise InputError(f"no PNG, JPEG, TIFF, WebP or BMP images in {input_dir}"
                             + ("" if recursive else " (try --recursive)"))
        return job


def _output_names(relatives: List[Path], output: OutputOptions) -> List[Tuple[Path, Path]]:
    """(input, output) relative paths. A renamed output (new suffix) that another input's output
    also claims keeps its input's whole name: photo.jpg -> photo.jpg.png next to photo.png."""
    names = [batch_output_name(r, output) for r in relatives]
    claimed = {}
    for name in names:
        claimed[name] = claimed.get(name, 0) + 1
    return [(r, r.with_name(r.name + n.suffix) if n != r and claimed[n] > 1 else n) for r, n in zip(relatives, names)]


@dataclass(frozen=True)
class ImageRecord:
    """One restored image: input and output paths, the plan in words, wall time in seconds (open to write)."""
    source: Path
    output: Path
    plan: str
    seconds: float


def _not_a_file(path: Path) -> Optional[str]:
    """None for a readable file; "" for a folder (passed over); else why it cannot be read."""
    try:
        if path.is_file():
            return None
        if path.is_symlink():
            path.stat()  # raises for a dangling link or a loop
        return ""
    except RuntimeError:  # pathlib's "Symlink loop" on older Pythons
        return "symbolic link loop"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        if exc.errno == errno.ENOENT:
            return "dangling symbolic link (its target does not exist)"
        return f"cannot read ({exc.strerror or exc})"


def _finished(out: Path) -> bool:
    """--skip-existing trusts an output only if it is whole (``flowrt.io.complete``); else it is
    restored again.
    A finished output's tiled leftovers (a run killed between the final rename and their removal)
    and dead writers' temporaries in its folder are deleted: nothing will resume from them."""
    from flowrt.io.atomic import remove_stale_temporaries
    from flowrt.io.complete import is_complete_image
    from flowrt.io.output_lock import OutputBusy, output_lock
    from flowrt.tiling.streamed import partial_paths, remove_leftovers
    if is_complete_image(out):
        try:
            with output_lock(out):  # leftovers of a live run (it is rewriting this output) are its own
                remove_leftovers(*partial_paths(out))
        except (OutputBusy, FlowrtError):
            pass
        remove_stale_temporaries(out.parent)  # a killed rewrite of this output left its temp here
        return True
    log.warning("%s exists but is damaged or incomplete; restoring it again", out)
    return False


@dataclass
class BatchSummary:
    done: int = 0
    failed: List[Tuple[Path, str]] = field(default_factory=list)
    skipped: List[Tuple[Path, Path]] = field(default_factory=list)   # (input, existing output), left as they were
    unchanged: int = 0     # of done: nothing to restore, written as they were
    lossless: int = 0      # lossy inputs written as PNG (no --format)
    records: List[ImageRecord] = field(default_factory=list)   # one per restored image, in order

    def line(self) -> str:
        text = f"restored {self.done} image(s)"
        if self.unchanged:
            text += f" ({self.unchanged} clean, written unchanged; --force restores them)"
        if self.skipped:
            text += f", skipped {len(self.skipped)} already done"
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
    step and finished image (default: silent); closed at the end.
    """
    from flowrt.pipeline.run import TilingOptions, prepare_restore, run_restore

    tiling = tiling or TilingOptions()
    summary = BatchSummary(skipped=list(job.skipped), lossless=job.lossless)
    progress = progress or _Silent()
    for path, message in job.unreadable:
        summary.failed.append((path, message))
        report(f"failed: {message}")
    try:
        for index, (src, dst) in enumerate(job.pairs, 1):
            interrupts.check()
            start, note = time.monotonic(), ""
            try:
                with _output_folder(dst.parent):
                    work = prepare_restore(str(src), str(dst), opts, tiling, bit_depth=bit_depth, output=output)
                    if verbose:
                        report(f"{src.name}: {work.plan.nothing_to_do or work.plan.with_engine(prior, device).describe()}")
                    run_restore(work, prior, opts, device=device, model=model, on_step=progress.step)
                summary.done += 1
                if work.unchanged:
                    summary.unchanged += 1
                    note = "clean, written unchanged"
                summary.records.append(ImageRecord(src, dst, work.plan.nothing_to_do or work.plan.describe(),
                                                   time.monotonic() - start))
            except Exception as exc:  # noqa: BLE001 - one image's crash must not lose the rest of a batch
                if was_interrupted(exc):   # Ctrl-C inside a numba kernel: stop the batch, as Ctrl-C does
                    raise KeyboardInterrupt from exc
                message = failure_message(src, exc, dst)
                summary.failed.append((src, message))
                report(f"failed: {message}")
                note = "failed"
            progress.image_done(index, len(job.pairs), src.name, time.monotonic() - start, note)
    finally:
        progress.close()
    return summary


def failure_message(src: Path, exc: Exception, dst: Optional[Path] = None) -> str:
    """One line for an image that failed: a FlowrtError as it reads (with the file named), an I/O
    failure the library did not name as a storage error, anything else as an internal error (its
    traceback logged for -vv)."""
    if isinstance(exc, OSError):
        exc = storage_error(exc.filename or dst or src, exc, "restore into")
    if isinstance(exc, FlowrtError):
        return str(exc) if src.name in str(exc) else f"{src}: {exc}"
    log.debug("%s failed", src, exc_info=exc)
    return f"{src}: internal error ({type(exc).__name__}: {exc})"


@contextlib.contextmanager
def _output_folder(folder: Path):
    """Create ``folder`` (and missing parents) for one image; remove what was created if it fails."""
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, no permission, a read-only disk
        raise storage_error(folder, exc, "create the output folder") from None
    try:
        yield
    except BaseException:
        for path in created:  # deepest first; a folder something else filled meanwhile stays
            try:
                path.rmdir()
            except OSError:
                break
        raise
