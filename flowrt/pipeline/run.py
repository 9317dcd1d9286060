"""One image file in, one out, whole or tile by tile: the code path ``flowrt restore`` and ``flowrt batch`` share.

Whole-image MAP keeps the flow's autograd activations for every pixel: peak RSS measured 0.46, 0.85
and 1.9 GB for 256^2, 512^2 and 1024^2 with the default prior architecture (3 levels x 4 steps,
width 64; ``--iters 2``, CPU), about 1.35 GB per output megapixel. So an output larger than
``AUTO_TILE_PIXELS`` (1024 x 1024) is restored in ``DEFAULT_TILE`` tiles unless ``--tile 0`` says
otherwise; smaller images go exactly the way they always did.

A tile's forward model is the plan's, cut to the tile: the observed pixels, the mask and, for a
JPEG, the file's own coefficient blocks over the tile (``JpegInfo.crop``). Interior tile borders are
aligned (``tile_alignment``) so that no JPEG block or MCU and no downsampling phase straddles one and
every tile side is a multiple of the prior's 2^L; the data term of a tile is then exactly the
whole image's data term restricted to the tile. (The prior is not pixel-local, so tiled and whole
results differ a little near borders; ``flowrt.tiling.grid`` blends overlaps away.)

TIFF to TIFF is streamed (``flowrt.tiling.streamed``): planned from a sample of the input and never held
whole. Other images are decoded once; ``-`` (stdin/stdout) tiles in memory and cannot resume.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Tuple

import numpy as np

from flowrt.errors import InputError
from flowrt.pipeline.plan import RestorationPlan, RestoreOptions, noise_sample, resolve_sigma, restore_region

__all__ = ["AUTO_TILE_PIXELS", "DEFAULT_TILE", "DEFAULT_OVERLAP", "TilingOptions", "TileSettings",
           "JpegQuality", "RestoreJob", "prepare_restore", "run_restore", "tile_alignment",
           "tile_restorer", "model_key"]

log = logging.getLogger("flowrt.pipeline.plan")

AUTO_TILE_PIXELS = 1024 * 1024   # output pixels above which --tile auto tiles (~1.9 GB whole, measured)
DEFAULT_TILE = 512               # output pixels; ~0.85 GB peak per tile with the default prior
DEFAULT_OVERLAP = 32
_TIFF_SUFFIXES = (".tif", ".tiff")
Progress = Optional[Callable[[int, int], None]]


@dataclass(frozen=True)
class TilingOptions:
    """tile: output pixels per tile side; None = automatic (DEFAULT_TILE above AUTO_TILE_PIXELS,
    else whole), 0 = always whole. overlap: output pixels shared by neighbouring tiles. resume:
    continue an interrupted tiled restore of the same input, model and options."""
    tile: Optional[int] = None
    overlap: int = DEFAULT_OVERLAP
    resume: bool = False

    def validate(self) -> "TilingOptions":
        if self.tile is not None and self.tile < 0:
            raise InputError(f"--tile must be 0 (whole image) or a tile side in pixels, got {self.tile}")
        if self.overlap < 0:
            raise InputError(f"--overlap must be >= 0, got {self.overlap}")
        return self

    def tile_side(self, out_height: int, out_width: int) -> int:
        """The requested tile side for an output of this size; 0 = restore it whole."""
        if self.tile is None:
            return DEFAULT_TILE if out_height * out_width > AUTO_TILE_PIXELS else 0
        return self.tile


@dataclass(frozen=True)
class JpegQuality:
    """``--jpeg Q`` for a streamed image: each tile is re-encoded at quality Q on its own, which on
    MCU-aligned tiles gives the same blocks as encoding the whole image (colour conversion, 4:2:0
    pooling and the DCT are all MCU-local; edge padding happens only at the image edge)."""
    quality: int
    greyscale: bool = False
    mcu: Tuple[int, int] = (16, 16)  # 4:2:0, as jpeg_info_for_quality encodes colour

    def for_pixels(self, rgb: np.ndarray):
        from flowrt.io.jpeg_coefficients import jpeg_info_for_quality
        return jpeg_info_for_quality(rgb, self.quality, greyscale=self.greyscale)


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
    if side != tile:
        log.info("tile side %d rounded to %d (a multiple of %d)", tile, side, align)
    grid = TileGrid.plan(height, width, tile=side, overlap=overlap, scale=plan.scale, align=align)
    return TileSettings(side, overlap, align, grid.count)


def _tile_jpeg(plan: RestorationPlan, rgb: np.ndarray, box):
    if plan.jpeg is None:
        return None
    if isinstance(plan.jpeg, JpegQuality):
        return plan.jpeg.for_pixels(rgb)
    return plan.jpeg.crop(*box)


def tile_restorer(plan: RestorationPlan, prior, solver, *, greyscale: bool = False, device=None,
                  progress: Progress = None, name: str = "<image>") -> Callable:
    """restore_tile(tile_in float32 (h, w, 3) [0, 1], box (y0, y1, x0, x1) input pixels) -> float32
    (h*scale, w*scale, 3) [0, 1]: MAP with the plan's forward model cut to the box. The box must be
    aligned as ``tile_alignment`` says (the tiler makes it so)."""
    def restore_tile(tile_in: np.ndarray, box) -> np.ndarray:
        y0, y1, x0, x1 = box
        mask = None if plan.mask is None else plan.mask[y0:y1, x0:x1]
        return restore_region(tile_in, plan, prior, solver, jpeg=_tile_jpeg(plan, tile_in, box), mask=mask,
                              greyscale=greyscale, device=device, progress=progress,
                              name=f"{name} tile {tuple(int(b) for b in box)}")
    return restore_tile


@dataclass
class RestoreJob:
    """One input resolved: what it is, the plan, and whether it is tiled or streamed.

    size: input (width, height). image: the decoded LoadedImage, or None when streamed (TIFF to
    TIFF, tiled: read by regions). tile: requested tile side, 0 = whole image.
    """
    in_path: str
    out_path: str
    name: str
    size: Tuple[int, int]
    format: str
    plan: RestorationPlan
    greyscale: bool
    image: Optional[object]
    tile: int
    tiling: TilingOptions
    bit_depth: Optional[int] = None

    @property
    def streamed(self) -> bool:
        return self.image is None

    def settings(self, multiple: int) -> Optional[TileSettings]:
        """The tiling for a prior of this 2^L (None for a whole-image restore)."""
        if not self.tile:
            return None
        return tile_settings(self.size[1], self.size[0], self.plan, multiple, self.tile, self.tiling.overlap)

    def headline(self) -> str:
        return f"{self.name}: {self.size[0]}x{self.size[1]} {self.format}; {self.plan.describe()}"


def prepare_restore(in_path: str, out_path: str, opts: RestoreOptions, tiling: TilingOptions = TilingOptions(),
                    *, bit_depth: Optional[int] = None) -> RestoreJob:
    """Read (or, for a large TIFF to TIFF, only open) the input and plan its restoration.

    Fails (InputError) before any long work for a bad input, output or option.
    """
    opts.validate()
    tiling.validate()
    if tiling.resume and "-" in (str(in_path), str(out_path)):
        raise InputError("--resume continues from files next to OUT; IN and OUT must be files, not '-'")
    streamed = _streamed_job(str(in_path), str(out_path), opts, tiling, bit_depth)
    if streamed is not None:
        return streamed
    from flowrt.io.image_file import check_destination, read_image
    from flowrt.pipeline.plan import plan_restoration
    image = read_image(in_path)
    check_destination(out_path, image, bit_depth=bit_depth)  # a bad OUT fails now, not after the MAP run
    plan = plan_restoration(image, opts)
    w, h = image.size
    tile = tiling.tile_side(h * plan.scale, w * plan.scale)
    return RestoreJob(str(in_path), str(out_path), image.name, (w, h), image.format, plan,
                      image.mode == "L", image, tile, tiling, bit_depth)


def _streamed_job(in_path: str, out_path: str, opts: RestoreOptions, tiling: TilingOptions,
                  bit_depth: Optional[int]) -> Optional[RestoreJob]:
    """A job that streams a TIFF to a TIFF by regions, or None where the input is decoded whole."""
    from flowrt.io.tiff_stream import TiffSource, is_tiff
    if tiling.tile == 0 or in_path == "-" or Path(out_path).suffix.lower() not in _TIFF_SUFFIXES \
            or not is_tiff(in_path):
        return None
    try:
        source = TiffSource(in_path)
    except InputError:  # a TIFF layout only the whole-image reader handles (or says what is wrong)
        return None
    with source:
        height, width, channels = source.shape
        tile = tiling.tile_side(height * opts.scale, width * opts.scale)
        if not tile:
            return None
        if bit_depth not in (None, 8, 16):
            raise InputError(f"cannot write TIFF with {bit_depth}-bit samples")
        plan = _plan_streamed(source, opts, greyscale=channels <= 2)
    fmt = "TIFF (streamed)"
    return RestoreJob(in_path, out_path, Path(in_path).name, (width, height), fmt, plan, channels <= 2,
                      None, tile, tiling, bit_depth)


def _plan_streamed(source, opts: RestoreOptions, *, greyscale: bool) -> RestorationPlan:
    """``plan_restoration`` for an image read by regions: sigma from a sample, --jpeg Q per tile."""
    from flowrt.operators import parse_blur, read_mask
    height, width, channels = source.shape

    def read_rgb(y0, y1, x0, x1):
        region = source.read(y0, y1, x0, x1)
        return np.repeat(region[:, :, :1], 3, axis=2) if channels <= 2 else region[:, :, :3]

    jpeg = None if opts.jpeg in ("auto", "off") else JpegQuality(int(opts.jpeg), greyscale)
    jpeg_source = {"auto": "off (not a JPEG)", "off": "off"}.get(opts.jpeg, f"quality {opts.jpeg}")
    sigma, sigma_source = resolve_sigma(noise_sample(read_rgb, height, width), opts, jpeg)
    blur = parse_blur(opts.blur) if opts.blur else None
    mask = read_mask(opts.mask, (height, width)) if opts.mask else None
    return RestorationPlan(sigma, sigma_source, jpeg, jpeg_source, int(opts.scale), blur, mask)


def model_key(model_dir=None) -> str:
    """sha256 of the prior's manifest (it lists every model file's own sha256)."""
    from flowrt.prior.folders import MANIFEST_NAME, resolve_model_dir, sha256_file
    return sha256_file(resolve_model_dir(model_dir) / MANIFEST_NAME)


def run_key(job: RestoreJob, opts: RestoreOptions, model: str) -> str:
    """What a resumed run must share with the interrupted one: model, options, resolved plan."""
    described = {"model": model, "options": dataclasses.asdict(opts), "plan": job.plan.describe(),
                 "bit_depth": job.bit_depth}
    described["options"].pop("device")  # a run may resume on another device
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


def run_restore(job: RestoreJob, prior, opts: RestoreOptions, *, device=None, model: str = "",
                on_iteration: Progress = None, on_tile: Progress = None) -> None:
    """Restore ``job`` with ``prior`` (a frozen FlowModel) and write its output (atomically).

    Whole image: on_iteration(done, total) per MAP iteration. Tiled: on_iteration per iteration of
    the current tile and on_tile(done, total) after each tile. model: ``model_key`` of the prior
    (part of the resume key).
    """
    settings = job.settings(prior.multiple)
    if settings is None:
        from flowrt.io.image_file import write_image
        from flowrt.pipeline.plan import restore_loaded
        if job.tiling.resume:
            log.info("%s is restored whole; --resume has nothing to resume", job.name)
        restored = restore_loaded(job.image, job.plan, prior, opts.solver, device=device, progress=on_iteration)
        write_image(job.out_path, restored, job.image, bit_depth=job.bit_depth)
        return
    restore_tile = tile_restorer(job.plan, prior, opts.solver, greyscale=job.greyscale, device=device,
                                 progress=on_iteration, name=job.name)
    if job.in_path == "-" or job.out_path == "-":
        _run_in_memory(job, restore_tile, settings, on_tile)
        return
    from flowrt.tiling.streamed import restore_file_tiled
    restore_file_tiled(job.in_path, job.out_path, restore_tile, tile=settings.tile, overlap=settings.overlap,
                       scale=job.plan.scale, align=settings.align, resume=job.tiling.resume, progress=on_tile,
                       run_key=run_key(job, opts, model), loaded=job.image, bit_depth=job.bit_depth)


def _run_in_memory(job: RestoreJob, restore_tile: Callable, settings: TileSettings, on_tile: Progress) -> None:
    """Tiled restore of a decoded image whose input or output is a pipe (no partial file, no resume)."""
    from flowrt.io.array_stream import ArraySink, ArraySource
    from flowrt.io.image_file import write_image
    from flowrt.tiling.grid import restore_tiled
    h, w = job.image.rgb.shape[:2]
    sink = ArraySink((h * job.plan.scale, w * job.plan.scale, 3))
    restore_tiled(ArraySource(job.image.rgb), sink, restore_tile, tile=settings.tile, overlap=settings.overlap,
                  scale=job.plan.scale, align=settings.align, progress=on_tile)
    write_image(job.out_path, sink.pixels, job.image, bit_depth=job.bit_depth)
