"""``flowrt batch --ray``: the local batch's work spread over a Ray cluster.

Each image is a Ray task (``flowrt.distributed.worker``); an image large enough to be tiled is
opened and planned by the driver, each of its tiles becomes a task, and the driver blends and writes
them with the same tiler as a local run (``flowrt.pipeline.run.run_tiled``), so a gigapixel scan
spreads too. Workers keep their prior loaded between tasks. The driver keeps a bounded number of
tasks in flight (``RaySettings.window``) and reacts to whichever finishes first (``ray.wait``).

Semantics are the local batch's (``flowrt.pipeline.batch``): the same planned pairs, per-image
failures reported with the same messages while the rest goes on, and the same bytes out: every
MAP run seeds itself (``SolverConfig.seed``), so where a task runs does not change its result.
A worker that dies is replaced and its task rerun by Ray (``max_retries``); a task whose workers
keep dying fails its image. Outputs appear atomically or not at all.
"""
from __future__ import annotations

import collections
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from flowrt.distributed.cluster import RaySettings, connect
from flowrt.distributed.worker import Outcome, PriorSpec
from flowrt.pipeline.batch import BatchJob, BatchSummary, failure_message

__all__ = ["RayBatchReport", "run_batch_on_ray"]

@dataclass
class RayBatchReport:
    """summary: as the local batch's. prior_loads: priors loaded over the cluster (one per worker
    process that ran a task; more only when a worker was replaced). task_seconds: time inside each
    finished task. workers: processes that ran tasks."""
    summary: BatchSummary
    prior_loads: int = 0
    task_seconds: List[float] = field(default_factory=list)
    workers: int = 0


def run_batch_on_ray(job: BatchJob, opts, tiling, spec: PriorSpec, settings: RaySettings, *,
                     bit_depth: Optional[int] = None, report: Callable[[str], None] = print,
                     verbose: bool = False) -> RayBatchReport:
    """Restore ``job``'s pairs on the cluster ``settings`` name (see ``run_batch`` for opts, tiling,
    bit_depth, report; ``spec`` says which prior the workers load)."""
    settings.validate()
    new_folders = _missing_folders(job)
    with connect(settings) as ray:
        driver = _Driver(ray, job, opts, tiling, spec, settings, bit_depth, report, verbose)
        try:
            driver.run()
        finally:
            driver.close()
    _remove_empty(new_folders)
    return driver.result


class _Driver:
    """The event loop over one batch: submit up to ``window`` image tasks, run tiled images here."""

    def __init__(self, ray, job: BatchJob, opts, tiling, spec: PriorSpec, settings: RaySettings,
                 bit_depth, report, verbose):
        from flowrt.distributed import worker
        self.ray, self.opts, self.tiling, self.spec = ray, opts, tiling, spec
        self.settings, self.bit_depth, self.report, self.verbose = settings, bit_depth, report, verbose
        task = ray.remote(num_cpus=1, max_retries=settings.max_retries, retry_exceptions=False)
        self.tasks = {name: task(getattr(worker, name))
                      for name in ("restore_file", "restore_pixels", "restore_tile", "prior_multiple")}
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.window = settings.window or 2 * max(cpus, 1)
        self.pending = collections.deque(job.pairs)
        self.inflight: Dict[object, tuple] = {}   # ref -> (src, dst, decoded image or None)
        self.tiled: collections.deque = collections.deque()   # (src, dst, prepared job or None)
        self.result = RayBatchReport(BatchSummary(skipped=list(job.skipped), lossless=job.lossless))
        for path, message in job.unreadable:   # broken links, reported as the local batch does
            self.result.summary.failed.append((path, message))
            report(f"failed: {message}")
        self._loads: Dict[str, int] = {}   # worker process ("host:pid") -> priors it loaded
        self._multiple: Optional[int] = None
        self.bar = _Progress(len(job.pairs))

    def run(self) -> None:
        while self.pending or self.inflight or self.tiled:
            self.top_up()
            if self.tiled:
                self._run_tiled(*self.tiled.popleft())
            elif self.inflight:
                self.wait_for(None)

    def close(self) -> None:
        """After the loop, or when it is interrupted: drop unfinished tasks, close opened inputs."""
        for ref in self.inflight:
            self.cancel(ref)
        for _, _, prepared in self.tiled:
            if prepared is not None:
                prepared.source.close()
        self.bar.close()

    # -- whole images ---------------------------------------------------------------------------
    def top_up(self) -> None:
        """Submit image tasks until ``window`` are in flight (not past a tiled image waiting here)."""
        while self.pending and len(self.inflight) < self.window and not self.tiled:
            src, dst = self.pending.popleft()
            if self.settings.output == "worker":
                ref = self.tasks["restore_file"].remote(self.spec, str(src), str(dst), self.opts, self.tiling,
                                                        self.bit_depth)
                self.inflight[ref] = (src, dst, None)
            else:
                self._submit_decoded(src, dst)

    def _submit_decoded(self, src: Path, dst: Path) -> None:
        """Driver mode: open and plan here, send the decoded image; a tiled one waits for the driver."""
        from flowrt.pipeline.run import prepare_restore
        from flowrt.pipeline.source import Route
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            prepared = prepare_restore(str(src), str(dst), self.opts, self.tiling, bit_depth=self.bit_depth)
        except Exception as exc:  # noqa: BLE001 - reported for this image; the batch goes on
            self._failed(src, failure_message(src, exc))
            return
        if prepared.source.route is not Route.WHOLE:
            self.tiled.append((src, dst, prepared))
            return
        self._describe(src, prepared.plan.describe())
        prepared.source.close()
        image = prepared.source.image
        ref = self.tasks["restore_pixels"].remote(self.spec, str(src), image, prepared.plan, self.opts)
        self.inflight[ref] = (src, dst, image)

    def wait_for(self, wanted) -> None:
        """Handle finished image tasks until one has finished, or until ``wanted`` (a tile) has."""
        while True:
            refs = list(self.inflight) + ([wanted] if wanted is not None else [])
            ready, _ = self.ray.wait(refs, num_returns=1)
            for ref in ready:
                if ref in self.inflight:
                    self._finish(ref, *self.inflight.pop(ref))
            self.top_up()
            if wanted is None or wanted in ready:
                return

    def _finish(self, ref, src: Path, dst: Path, image) -> None:
        try:
            value = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:  # raised on the worker, outside flowrt's own catch
            self._failed(src, failure_message(src, exc.cause or exc))
            return
        except self.ray.exceptions.RayError as exc:
            self._failed(src, _lost(src, exc, self.settings.max_retries))
            return
        restored, outcome = value if image is not None else (None, value)
        self.note(outcome)
        if outcome.status == "tiled":
            self.tiled.append((src, dst, None))
        elif outcome.status == "failed":
            self._failed(src, outcome.message)
        elif image is not None:
            self._write(src, dst, restored, image)
        else:
            self._describe(src, outcome.message)
            self._check_written(src, dst)

    def _check_written(self, src: Path, dst: Path) -> None:
        """Worker mode: the worker says it wrote dst; it counts only if this machine sees it."""
        if dst.exists():
            self._done()
        else:
            self._failed(src, f"{src}: the worker wrote {dst} where this machine cannot see it; "
                              "use --ray-output driver when workers do not share the output folder")

    def _write(self, src: Path, dst: Path, restored, image) -> None:
        from flowrt.io.image_file import write_image
        try:
            write_image(str(dst), restored, image, bit_depth=self.bit_depth)  # as a local whole restore
        except Exception as exc:  # noqa: BLE001
            self._failed(src, failure_message(src, exc))
            return
        self._done()

    # -- tiled images ---------------------------------------------------------------------------
    def _run_tiled(self, src: Path, dst: Path, prepared) -> None:
        """Open and plan a large image here, spread its tiles, blend and write them here."""
        from flowrt.distributed.tiles import TileFeeder
        from flowrt.pipeline.run import prepare_restore, run_tiled
        feeder = None
        try:
            if prepared is None:
                dst.parent.mkdir(parents=True, exist_ok=True)
                prepared = prepare_restore(str(src), str(dst), self.opts, self.tiling, bit_depth=self.bit_depth)
            with prepared.source:
                self._describe(src, prepared.plan.describe())
                settings = prepared.settings(self.prior_multiple())
                feeder = TileFeeder(self, prepared, settings)
                run_tiled(prepared, feeder.restore_tile, settings, self.opts, model=self.spec.model,
                          on_tile=self.bar.tiles)
        except self.ray.exceptions.RayTaskError as exc:  # a tile's own error, raised on its worker
            self._failed(src, failure_message(src, exc.cause or exc), tiled=True)
        except self.ray.exceptions.RayError as exc:
            self._failed(src, _lost(src, exc, self.settings.max_retries), tiled=True)
        except Exception as exc:  # noqa: BLE001
            self._failed(src, failure_message(src, exc), tiled=True)
        else:
            self._done(tiled=True)
        finally:
            if feeder is not None:
                feeder.cancel()

    def prior_multiple(self) -> int:
        """The prior's 2^L, asked of a worker once (the driver never loads the prior)."""
        if self._multiple is None:
            self._multiple = int(self.ray.get(self.tasks["prior_multiple"].remote(self.spec)))
        return self._multiple

    # -- what TileFeeder uses (flowrt.distributed.tiles.TaskRunner) ------------------------------
    def submit_tile(self, tile_rgb, plan, greyscale: bool):
        return self.tasks["restore_tile"].remote(self.spec, tile_rgb, plan, self.opts, greyscale)

    def get(self, ref):
        return self.ray.get(ref)

    def cancel(self, ref) -> None:
        self.ray.cancel(ref)  # not force: that would kill the worker and its loaded prior

    # -- bookkeeping ----------------------------------------------------------------------------
    def note(self, outcome: Outcome) -> None:
        """Count a finished task's time and its worker's prior loads."""
        if outcome.worker:
            self._loads[outcome.worker] = max(self._loads.get(outcome.worker, 0), outcome.loads)
            self.result.prior_loads = sum(self._loads.values())
            self.result.workers = len(self._loads)
        if outcome.status != "tiled":
            self.result.task_seconds.append(outcome.seconds)

    def _describe(self, src: Path, plan: str) -> None:
        """-v: what is done to an image (its plan's description)."""
        if self.verbose and plan:
            self.report(f"{src.name}: {plan}")

    def _done(self, tiled: bool = False) -> None:
        self.result.summary.done += 1
        self.bar.image_done(tiled)

    def _failed(self, src: Path, message: str, tiled: bool = False) -> None:
        self.result.summary.failed.append((src, message))
        self.report(f"failed: {message}")
        self.bar.image_done(tiled)


def _lost(src: Path, exc: Exception, retries: int) -> str:
    """One line for a task Ray gave up on (its worker died on every try)."""
    return f"{src}: lost on the cluster after {retries} retries ({type(exc).__name__})"


class _Progress:
    """Images finished over the cluster, as a tqdm bar on a terminal (silent otherwise); the tiled
    image the driver is blending advances tile by tile."""

    def __init__(self, total: int):
        self._bar, self._tiled = None, 0.0
        if sys.stderr.isatty():
            from tqdm.auto import tqdm
            self._bar = tqdm(total=total, desc="images (ray)", unit="img", dynamic_ncols=True)

    def tiles(self, done: int, total: int) -> None:
        """on_tile(done, total) of the tiled image in progress."""
        self._advance(done / total - self._tiled)
        self._tiled = done / total

    def image_done(self, tiled: bool = False) -> None:
        self._advance(1 - self._tiled if tiled else 1)
        if tiled:
            self._tiled = 0.0

    def _advance(self, step: float) -> None:
        if self._bar is not None:
            self._bar.update(step)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _missing_folders(job: BatchJob) -> set:
    """Output folders (and their parents) that do not exist before the batch."""
    return {p for _, dst in job.pairs for p in (dst.parent, *dst.parent.parents) if not p.exists()}


def _remove_empty(folders: set) -> None:
    """Remove those of ``folders`` the batch created but left empty (all their images failed),
    deepest first, as the local batch does; a folder something else filled stays."""
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        try:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        except OSError:
            continue
