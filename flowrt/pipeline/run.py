"""One image file in, one out, whole or tile by tile: the code path ``flowrt restore`` and ``flowrt batch`` share.

Whole-image MAP keeps the flow's activations for every pixel, so its peak memory grows with the
output (benchmarks/results/restore_scaling.md, tiled_rss_torch.md). So an output larger than
``AUTO_TILE_PIXELS`` (640 x 640) is restored in tiles of at most ``DEFAULT_TILE`` unless ``--tile 0`` says
otherwise; smaller images go exactly the way they always did.

A tile's forward model is the plan's, cut to the tile: the observed pixels, the mask and, for a
JPEG, the file's own coefficient blocks over the tile (``JpegInfo.crop``). Interior tile borders are
aligned (``tile_alignment``) so that no JPEG block or MCU and no downsampling phase straddles one and
every tile side is a multiple of the prior's 2^L; the data term of a tile is then exactly the
whole image's data term restricted to the tile. (The prior is not pixel-local, so tiled and whole
results differ a little near borders; ``flowrt.tiling.grid`` blends overlaps away.)

The route is decided once, when the input is opened (``flowrt.pipeline.source``): TIFF to TIFF tiled is
streamed, planned from a sample of the input and never held whole; other images are decoded once;
``-`` (stdin/stdout) tiles in memory and cannot resume. Data flows one way: open -> plan -> restore
(``flowrt.pipeline.region`` per region, ``flowrt.tiling`` for the grid) -> write.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Tuple

import numpy as np

from flowrt.errors import InputError
from flowrt.pipeline.output import OutputOptions
from flowrt.pipeline.plan import RestorationPlan, RestoreOptions, StageProgress
from flowrt.pipeline.region import restore_region
from flowrt.pipeline.source import Route, Source, open_source

__all__ = ["AUTO_TILE_PIXELS", "DEFAULT_TILE", "DEFAULT_OVERLAP", "TilingOptions", "TileSettings",
           "RestoreJob", "prepare_restore", "run_restore", "run_tiled", "restore_in_memory", "tile_alignment",
           "tile_restorer", "model_key"]

log = logging.getLogger("flowrt.pipeline")

# Output pixels above which --tile auto tiles: whole restores cost more per pixel as they grow
# (benchmarks/results/restore_scaling.md), so only images up to about 640 x 640 stay whole.
AUTO_TILE_PIXELS = 640 * 640
DEFAULT_TILE = 512               # output pixels, the largest automatic tile
TILE_ROUNDING = 64               # automatic tiles are multiples of this (every tile alignment divides it)
DEFAULT_OVERLAP = 32
Progress = Optional[Callable[[int, int], None]]


@dataclass(frozen=True)
class TilingOptions:
    """tile: output pixels per tile side; None = automatic (DEFAULT_TILE above AUTO_TILE_PIXELS,
    else whole), 0 = always whole. overlap: output pixels shared by neighbouring tiles. resume:
    continue an interrupted tiled restore of the same input, model and options."""
    tile: Optional[int] = None
    overlap: int = DEFAULT_OVERLAP
    resume: bool = False

    def __post_init__(self) -> None:  # valid by construction, as RestoreOptions
        self.validate()

    def validate(self) -> "TilingOptions":
        if self.tile is not None and self.tile < 0:
            raise InputError(f"--tile must be 0 (whole image) or a tile side in pixels, got {self.tile}")
        if self.overlap < 0:
            raise InputError(f"--overlap must be >= 0, got {self.overlap}")
        return self

    def tile_side(self, out_height: int, out_width: int) -> int:
        """The requested tile side for an output of this size; 0 = restore it whole."""
        if self.tile is None:
            if out_height * out_width <= AUTO_TILE_PIXELS:
                return 0
            return fitted_tile(out_height, out_width, DEFAULT_TILE, self.overlap)
        return self.tile


def fitted_tile(out_height: int, out_width: int, largest: int, overlap: int) -> int:
    """The smallest tile side (a multiple of TILE_ROUNDING, at most ``largest``) that covers each side
    with as few tiles as ``largest`` would: a 2048-pixel side needs five 512-pixel tiles with a
    32-pixel overlap, which 448-pixel tiles also cover, restoring 23% fewer pixels."""
    side = TILE_ROUNDING
    for length in (out_height, out_width):
        count = max(1, math.ceil((length - overlap) / (largest - overlap)))
        side = max(side, math.ceil((math.ceil((length - overlap) / count) + overlap) / TILE_ROUNDING) * TILE_ROUNDING)
    return min(side, largest)


@dataclass(frozen=True)
class TileSettings:
    """What the tiler is given, in output pixels: tile % align == 0, overlap <= tile / 2."""
    tile: int
    overlap: int
    align: int
    count: int

    def describe(self) -> str:
        return (f"{self.count} tile(s) of {self.tile}px, overlap {self.overlap}px, "
                f"borders on multiples of {self.align}px")


def tile_alignment(multiple: int, plan: RestorationPlan) -> int:
    """Output pixels between allowed interior tile borders: lcm(2^L, scale x JPEG MCU side)."""
    block = max(plan.jpeg.mcu) if plan.jpeg is not None else 1
    return math.lcm(int(multiple), plan.scale * block)


def tile_settings(height: int, width: int, plan: RestorationPlan, multiple: int, tile: int,
                  overlap: int) -> TileSettings:
    """Settle a requested tile side (rounded down to the alignment, at least one alignment) for an
    input of height x width; InputError for an overlap the tile cannot hold."""
    from flowrt.tiling.grid import TileGrid
    align = tile_alignment(multiple, plan)
    side = max(align, tile // align * align)
    if overlap > side // 2:  # name the tile the user asked for, not only the overlap they may not have set
        smallest = -(-2 * overlap // align) * align
        raise InputError(f"--tile {tile} is too small for an overlap of {overlap} px: tiles must be at least "
                         f"{smallest} px (twice the overlap, a multiple of {align}); use a larger --tile or "
                         "a smaller --overlap")
    if side != tile:
        log.info("tile side %d rounded to %d (a multiple of %d)", tile, side, align)
    grid = TileGrid.plan(height, width, tile=side, overlap=overlap, scale=plan.scale, align=align)
    return TileSettings(side, overlap, align, grid.count)


def tile_restorer(plan: RestorationPlan, prior, *, greyscale: bool = False, device=None,
                  progress: StageProgress = None, name: str = "<image>") -> Callable:
    """restore_tile(tile_in float32 (h, w, 3) [0, 1], box (y0, y1, x0, x1) input pixels) -> float32
    (h*scale, w*scale, 3) [0, 1]: MAP with the plan's forward model cut to the box. The box must be
    aligned as ``tile_alignment`` says (the tiler makes it so); the plan bound to prior's engine."""
    def restore_tile(tile_in: np.ndarray, box) -> np.ndarray:
        return restore_region(tile_in, tuple(int(b) for b in box), plan, prior, greyscale=greyscale,
                              device=device, progress=progress, name=f"{name} tile {tuple(int(b) for b in box)}")
    return restore_tile


@dataclass
class RestoreJob:
    """One input opened and planned: where it goes, how (``source.route``), and what is done to it.
    ``plan.nothing_to_do`` set: the input is written unchanged and no prior is needed."""
    source: Source
    out_path: str
    plan: RestorationPlan
    tiling: TilingOptions
    output: OutputOptions = OutputOptions()

    @property
    def bit_depth(self) -> Optional[int]:
        return self.output.bit_depth

    @property
    def unchanged(self) -> bool:
        """True when the plan found nothing to restore: ``run_restore`` copies the input."""
        return self.plan.nothing_to_do is not None

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def size(self) -> Tuple[int, int]:
        return self.source.size

    def settings(self, multiple: int) -> Optional[TileSettings]:
        """The tiling for a prior of this 2^L (None for a whole-image restore)."""
        if self.source.route is Route.WHOLE:
            return None
        w, h = self.source.size
        return tile_settings(h, w, self.plan, multiple, self.source.tile, self.tiling.overlap)

    def summary(self, seconds: float) -> str:
        """The line a finished restore ends with: what was done and how (``plan.describe()``: the
        forward model, the start, the denoiser, the iterations, the engine), the noise estimate, the time."""
        target = "stdout" if self.out_path == "-" else self.out_path
        if self.unchanged:
            return f"{self.name}: {self.plan.nothing_to_do}; wrote it unchanged to {target} ({seconds:.1f} s)"
        estimate = "" if self.plan.sigma_estimate is None or self.plan.sigma is not None \
            else f"; estimated noise {self.plan.sigma_estimate:.1f}"
        return f"{self.name} -> {target}: {self.plan.describe()}{estimate}; {seconds:.1f} s"


def prepare_restore(in_path: str, out_path: str, opts: RestoreOptions, tiling: TilingOptions = TilingOptions(),
                    *, bit_depth: Optional[int] = None, output: Optional[OutputOptions] = None) -> RestoreJob:
    """Open the input (decoded, or only opened when it will be streamed) and plan its restoration.

    out_path: a file, '-' or a folder (``flowrt.pipeline.output.output_path``). output: format,
    quality, bit depth (``bit_depth``, when given, overrides output's). Fails (InputError) before any
    long work for a bad input, output or option. The caller owns the job's source: ``run_restore``
    closes it.
    """
    from flowrt.io.atomic import check_output_path
    from flowrt.io.image_file import check_destination
    from flowrt.pipeline.output import output_path
    from flowrt.pipeline.plan import plan_restoration
    output = dataclasses.replace(output or OutputOptions(), **({"bit_depth": bit_depth} if bit_depth else {}))
    out_path = output_path(str(in_path), str(out_path), output)
    if tiling.resume and "-" in (str(in_path), str(out_path)):
        raise InputError("--resume continues from files next to OUT; IN and OUT must be files, not '-'")
    source = open_source(str(in_path), str(out_path), int(opts.scale), tiling)
    try:
        if source.route is Route.STREAMED:
            from flowrt.io.image_file import format_for_path
            format_for_path(out_path, output.format)
            if output.quality is not None:
                raise InputError("--quality is for JPEG and WebP output, not TIFF")
            check_output_path(out_path, source.in_path)
        else:  # a bad OUT fails now, not after the MAP run
            check_destination(out_path, source.image, bit_depth=output.bit_depth, fmt=output.format,
                              quality=output.quality)
        plan = plan_restoration(source, opts)
        if plan.nothing_to_do is None:   # a clean input is copied: no MAP, no partial output
            check_machine(source, int(opts.scale), out_path, output.bit_depth)
        warn_if_sigma_far(source, plan)
        if plan.nothing_to_do and source.route is Route.STREAMED and output.bit_depth:
            plan = dataclasses.replace(plan, nothing_to_do=None)  # a byte copy cannot change the depth
    except BaseException:
        source.close()
        raise
    return RestoreJob(source, str(out_path), plan, tiling, output)


SIGMA_WARNING_RATIO = 4.0   # a given sigma this far from the blind estimate is likely a slip


def warn_if_sigma_far(source: Source, plan: RestorationPlan) -> Optional[float]:
    """Log a warning when ``--sigma`` is far from what the image shows (``--sigma 255`` smears a clean
    photo, ``--sigma 0`` leaves a noisy one as it is); returns the estimate it compared with. Only for
    plain noise (no JPEG term, scale, blur or mask), where the blind estimate is the noise."""
    if plan.sigma_source != "given" or plan.jpeg is not None or plan.scale != 1 or plan.degradations \
            or plan.mask is not None:
        return None
    from flowrt.pipeline.noise_level import estimate_sigma
    from flowrt.pipeline.plan import noise_sample
    w, h = source.size
    estimate = estimate_sigma(noise_sample(source.read_rgb, h, w))
    given = plan.sigma or 0.0
    ratio = (given + 5.0) / (estimate + 5.0)   # +5: small sigmas are all alike
    if ratio > SIGMA_WARNING_RATIO or ratio < 1 / SIGMA_WARNING_RATIO:
        log.warning("%s: --sigma %g is far from the noise the image shows (about %.1f); the result will be %s",
                    source.name, given, estimate, "over-smoothed" if ratio > 1 else "left noisy")
    return estimate


def check_machine(source: Source, scale: int, out_path: str, bit_depth: Optional[int] = None) -> None:
    """Refuse, in one line, a restore this machine cannot hold (``flowrt.pipeline.resources``)."""
    from flowrt.pipeline.resources import check_resources
    depth = bit_depth or (source.image.bit_depth if source.image is not None
                          else 8 * getattr(source.pixels, "dtype", np.dtype(np.uint8)).itemsize)
    check_resources(source.route.value, source.size, source.pixels.shape[2], scale, out_path,
                    sample_bytes=2 if depth == 16 else 1, name=source.name)


def model_key(model_dir=None) -> str:
    """sha256 of the prior's manifest (it lists every model file's own sha256)."""
    from flowrt.prior.folders import MANIFEST_NAME, resolve_model_dir, sha256_file
    return sha256_file(resolve_model_dir(model_dir) / MANIFEST_NAME)


def run_key(job: RestoreJob, opts: RestoreOptions, model: str) -> str:
    """What a resumed run must share with the interrupted one: model, options, resolved plan."""
    described = {"model": model, "options": dataclasses.asdict(opts), "plan": job.plan.describe_model(),
                 "bit_depth": job.bit_depth}
    described["options"].pop("device")  # a run may resume on another device
    described["options"].pop("force")   # a tiled run is a restore, forced or not
    described["options"]["solver"].pop("accept_fallback")  # or accept a fallback it did not need
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


def prior_multiple(prior) -> int:
    """The size multiple tiles align to for ``prior`` (1 when no prior runs: the denoisers take any size)."""
    return 1 if prior is None else prior.multiple


def run_restore(job: RestoreJob, prior, opts: RestoreOptions, *, device=None, model: str = "",
                on_step: StageProgress = None, on_tile: Progress = None) -> None:
    """Restore ``job`` with ``prior`` (``flowrt.prior.engines.open_engine``'s) and write its output
    (atomically); closes the job's source. ``job.plan`` is bound to the prior's engine here, so the
    job's summary names it.

    on_step(stage, done, total) per step of each of ``plan.stages()`` (of the current tile when
    tiled), on_tile(done, total) after each tile. model: ``model_key`` of the prior (part of the
    resume key). A job with nothing to restore (``job.unchanged``) is written as its input was
    (prior may then be None), and so may a plan that does not ``needs_prior``. The output is locked for the whole run
    (``flowrt.io.output_lock``): a second run on the same OUT fails in one line.
    """
    from flowrt.io.output_lock import output_lock
    with job.source, output_lock(job.out_path):
        if job.unchanged:
            _write_unchanged(job)
            return
        job.plan = job.plan.with_engine(prior, device)
        settings = job.settings(prior_multiple(prior))
        if settings is None:
            _run_whole(job, prior, device, on_step)
            return
        restore_tile = tile_restorer(job.plan, prior, greyscale=job.source.greyscale, device=device,
                                     progress=on_step, name=job.name)
        run_tiled(job, restore_tile, settings, opts, model=model, on_tile=on_tile)


def run_tiled(job: RestoreJob, restore_tile: Callable, settings: TileSettings, opts: RestoreOptions, *,
              model: str = "", on_tile: Progress = None) -> None:
    """Blend ``restore_tile``'s tiles (see ``tile_restorer`` for its contract; it may also hand the
    tiles to other processes) into ``job``'s output and write it; the caller closes the source."""
    if "-" in (job.source.in_path, job.out_path):
        _write(job, _tiles_in_memory(job.source, job.plan, restore_tile, settings, on_tile))
        return
    from flowrt.tiling.streamed import restore_into_file
    restore_into_file(job.source, job.out_path, restore_tile, tile=settings.tile, overlap=settings.overlap,
                      scale=job.plan.scale, align=settings.align, resume=job.tiling.resume, progress=on_tile,
                      run_key=run_key(job, opts, model), bit_depth=job.bit_depth)


def restore_in_memory(source: Source, plan: RestorationPlan, prior, settings: Optional[TileSettings], *,
                      device=None, on_step: StageProgress = None, on_tile: Progress = None) -> np.ndarray:
    """Restore a decoded source whole (``settings`` None) or tile by tile in memory with ``plan``
    bound to ``prior``'s engine; float32 (H*scale, W*scale, 3) in [0, 1]. Nothing is written: the
    Python API and the pipes use it."""
    from flowrt.pipeline.region import restore_loaded
    if settings is None:
        return restore_loaded(source.image, plan, prior, device=device, progress=on_step)
    restore_tile = tile_restorer(plan, prior, greyscale=source.greyscale, device=device,
                                 progress=on_step, name=source.name)
    return _tiles_in_memory(source, plan, restore_tile, settings, on_tile)


def _tiles_in_memory(source: Source, plan: RestorationPlan, restore_tile: Callable, settings: TileSettings,
                     on_tile: Progress) -> np.ndarray:
    from flowrt.io.array_stream import ArraySink
    from flowrt.tiling.grid import restore_tiled
    w, h = source.size
    sink = ArraySink((h * plan.scale, w * plan.scale, 3))
    restore_tiled(source.pixels, sink, restore_tile, tile=settings.tile, overlap=settings.overlap,
                  scale=plan.scale, align=settings.align, progress=on_tile)
    return sink.pixels


def _run_whole(job: RestoreJob, prior, device, on_step: StageProgress) -> None:
    if job.tiling.resume:
        log.info("%s is restored whole; --resume has nothing to resume", job.name)
    _write(job, restore_in_memory(job.source, job.plan, prior, None, device=device, on_step=on_step))


def _write(job: RestoreJob, restored: np.ndarray) -> None:
    from flowrt.io.image_file import write_image
    write_image(job.out_path, restored, job.source.image, bit_depth=job.bit_depth, fmt=job.output.format,
                quality=job.output.quality)


def _write_unchanged(job: RestoreJob) -> None:
    """The input as it is: its bytes copied when the output is the same kind of file, else re-encoded."""
    from flowrt.io.image_file import format_for_path, write_image
    image = job.source.image
    same_kind = image is None or (format_for_path(job.out_path, job.output.format) == image.format
                                  and job.bit_depth in (None, image.bit_depth) and job.output.quality is None)
    if same_kind and job.out_path != "-" and job.source.in_path != "-":
        _copy_file(job.source.in_path, job.out_path)
        return
    write_image(job.out_path, image.rgb, image, bit_depth=job.bit_depth, fmt=job.output.format,
                quality=job.output.quality)


def _copy_file(src: str, dest: str) -> None:
    """Copy src's bytes to dest atomically, in bounded memory (a streamed input may be huge)."""
    import shutil

    from flowrt.errors import storage_error
    from flowrt.io.atomic import atomic_file
    if Path(dest).exists() and os.path.samefile(src, dest):
        raise InputError(f"{dest}: refusing to overwrite the input image")
    try:
        with open(src, "rb") as fin, atomic_file(dest) as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
    except OSError as exc:  # a storage failure (ARCHITECTURE.md), not the user's input
        raise storage_error(dest, exc) from None
