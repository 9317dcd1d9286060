"""From a loaded image and the user's options to a restored image: the library behind
``flowrt restore`` and ``flowrt batch``.

``plan_restoration`` resolves every "auto" of one opened ``Source`` (decoded or streamed: one
planner for both) into a ``RestorationPlan`` that says exactly what will be done, each decision
made once, here: the noise level, the JPEG tables, the start (denoiser, splitting or blurred
observation), the iteration count and the solver's schedule; the engine is added when the prior is
opened (``RestorationPlan.with_engine``). ``flowrt.pipeline.region`` then runs it on the whole
image or a tile, unchanged per tile.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Tuple

import numpy as np

from flowrt.denoise.base import AUTO, resolve_denoiser
from flowrt.errors import InputError
from flowrt.pipeline.options import MAX_SIGMA, RestoreOptions  # noqa: F401 - re-exported
from flowrt.solve.config import SolverConfig

log = logging.getLogger("flowrt.pipeline.plan")

# Below this estimate (0-255 scale) a JPEG is treated as compression alone: the estimator
# reads 1-5 on clean photos, and a JPEG's own blocking reads as a little noise too.
JPEG_NOISE_THRESHOLD = 5.0
# Below this estimate a PNG/TIFF is treated as clean: restoration then only applies the
# noise floor, i.e. changes the image very little.
NOISE_THRESHOLD = 2.0
# --sigma auto reads at most this many pixels (the estimator holds ~6 float64 copies of them):
# the whole image below it, NOISE_SAMPLE_CROP-square crops spread over a larger one.
NOISE_SAMPLE_PIXELS = 2048 * 2048
NOISE_SAMPLE_CROP = 512
# The phases a restore reports progress in, in order: progress(stage, done, total).
STAGE_DENOISE, STAGE_SPLIT, STAGE_MAP = "denoise", "split", "MAP"
StageProgress = Optional[Callable[[str, int, int], None]]


class JpegTerm(Protocol):
    """The JPEG part of a plan: the quantised coefficients of any MCU-aligned region of the input."""
    mcu: Tuple[int, int]   # (rows, cols) of one MCU: interior tile borders must fall on multiples
    quant_y: np.ndarray    # (8, 8) luma quantisation table, the same for every region

    def for_region(self, rgb: np.ndarray, box: Tuple[int, int, int, int]): ...

    def cut(self, box: Tuple[int, int, int, int]) -> "JpegTerm": ...


@dataclass(frozen=True)
class FileJpeg:
    """A JPEG input's own coefficients and tables (flowrt.io.jpeg_coefficients.JpegInfo)."""
    info: object

    @property
    def mcu(self) -> Tuple[int, int]:
        return self.info.mcu

    @property
    def quant_y(self) -> np.ndarray:
        return self.info.quant_y

    def for_region(self, rgb: np.ndarray, box: Tuple[int, int, int, int]):
        """The file's coefficient blocks over box (y0, y1, x0, x1) of the input; rgb is unused."""
        y0, y1, x0, x1 = box
        whole = (y0, x0, y1, x1) == (0, 0, self.info.height, self.info.width)
        return self.info if whole else self.info.crop(y0, y1, x0, x1)

    def cut(self, box: Tuple[int, int, int, int]) -> "FileJpeg":
        """The term of the region at box (MCU-aligned) of the input, as if that region were the image."""
        return FileJpeg(self.for_region(None, box))


@dataclass(frozen=True)
class JpegQuality:
    """``--jpeg Q``: the input was JPEG-compressed at IJG quality Q before being saved losslessly.
    Each region is re-encoded at Q on its own, which on MCU-aligned regions gives the same blocks as
    encoding the whole image (colour conversion, 4:2:0 pooling and the DCT are all MCU-local; edge
    padding happens only at the image edge)."""
    quality: int
    greyscale: bool = False

    @property
    def mcu(self) -> Tuple[int, int]:
        return (8, 8) if self.greyscale else (16, 16)  # jpeg_info_for_quality encodes colour 4:2:0

    @property
    def quant_y(self) -> np.ndarray:
        """IJG's luma table at this quality, whatever the pixels (read from a tiny encode)."""
        return self.for_region(np.zeros((8, 8, 3), np.float32), (0, 8, 0, 8)).quant_y

    def for_region(self, rgb: np.ndarray, box: Tuple[int, int, int, int]):
        from flowrt.io.jpeg_coefficients import jpeg_info_for_quality
        return jpeg_info_for_quality(rgb, self.quality, greyscale=self.greyscale)

    def cut(self, box: Tuple[int, int, int, int]) -> "JpegQuality":
        return self  # re-encoded per region anyway: nothing depends on where the region lies


NO_ENGINE = "none"   # the engine of a plan whose restore runs no image prior (RestorationPlan.needs_prior)


@dataclass
class RestorationPlan:
    """Every decision resolved: what the forward model is and why, and how it is inverted."""
    sigma: Optional[float]          # Gaussian noise std (0-255) in the data term; None = noise floor only
    sigma_source: str               # 'given', 'estimated', or 'estimated, below threshold'
    jpeg: Optional[JpegTerm]        # FileJpeg, JpegQuality or None
    jpeg_source: str                # 'file', 'quality Q', 'off'
    scale: int
    degradations: Optional[tuple]   # (option, parsed value) of each flowrt.numeric.degradations entry given; None: ()
    mask: Optional[np.ndarray]
    sigma_estimate: Optional[float] = None   # --sigma auto's reading (0-255), whether used or not
    nothing_to_do: Optional[str] = None      # why the input is returned unchanged; None: restore it
    start: Optional[object] = None  # flowrt.solve.start.StartPlan (start, iterations, schedule); None: not resolved
    denoiser: str = AUTO            # the denoiser of the denoised or split start (a DENOISERS name)
    engine: Optional[str] = None    # 'ort' or 'torch' once the prior is opened (with_engine); None before
    device: Optional[str] = None    # where the engine runs ('cpu', 'cuda', 'cuda:1'), with the engine

    def __post_init__(self) -> None:
        self.degradations = tuple(self.degradations or ())

    @property
    def inverts(self) -> bool:
        """The chain downsamples or blurs: enlarging a denoised observation would not undo it."""
        from flowrt.numeric import degradations
        return self.scale > 1 or degradations.inverts(self.degradations)

    @property
    def solver(self) -> SolverConfig:
        """The MAP's settings with everything the start decides resolved (``iters`` never None)."""
        if self.start is None:
            raise ValueError("this plan's method is not resolved (with_method)")
        return self.start.solver

    def with_method(self, solver: SolverConfig) -> "RestorationPlan":
        """The plan with its start, iteration count and schedule resolved from ``solver``
        (``flowrt.solve.start.choose_start``), for this noise level and JPEG term."""
        from flowrt.solve.start import choose_start, jpeg_equivalent_sigma
        jpeg_sigma = None if self.jpeg is None else jpeg_equivalent_sigma(self.jpeg.quant_y)
        # For Gaussian noise alone the denoiser's estimate is the restore (no MAP after it): the flow's
        # is Tweedie's posterior mean, the grouped one's a Wiener estimate; flow-MAP steps after either
        # moved the result by -0.01 dB on kodak24 at noise 25 (issue 21) and pull it back towards the
        # clipped observation once the clipping is undone
        alone = self.jpeg is None and self.mask is None and not self.inverts
        mask_only = self.mask is not None and self.jpeg is None and not self.inverts
        return dataclasses.replace(self, start=choose_start(solver, self.sigma, jpeg_sigma, inverts=self.inverts,
                                                            denoiser_is_estimate=alone, inpaints=mask_only))

    @property
    def needs_prior(self) -> bool:
        """Whether the image prior runs at all: not when a denoiser's estimate is the whole restore
        (noise alone with the flow denoiser, or ``--iters 0`` after a denoised or split start), so
        that no engine is loaded for it."""
        return not (self.start is not None and self.start.kind in ("denoise", "split", "inpaint")
                    and not self.solver.iters)

    def with_engine(self, prior, device=None) -> "RestorationPlan":
        """The plan bound to the engine that runs ``prior`` (the one place a prior's type says which
        loop runs it: ``flowrt.prior.engines.engine_of``) on ``device`` (None: the CPU). A plan that
        does not ``needs_prior`` may be bound to None: its engine is then NO_ENGINE."""
        if prior is None:
            if self.needs_prior:
                raise ValueError("this plan runs the image prior: bind it to one")
            return dataclasses.replace(self, engine=NO_ENGINE, device="cpu")
        from flowrt.prior.engines import engine_of
        engine = engine_of(prior)
        where = getattr(prior, "device", None) if engine == "ort" else device
        return dataclasses.replace(self, engine=engine, device="cpu" if where is None else str(where))

    def cut(self, box: Tuple[int, int, int, int]) -> "RestorationPlan":
        """The plan for the region at box (y0, y1, x0, x1) of the input, as if that region were the
        whole image: ``restore_region(rgb, (0, h, 0, w), plan.cut(box))`` does what
        ``restore_region(rgb, box, plan)`` does, and ships only the region's JPEG blocks and mask
        (a tile restored in another process). The box must be aligned as ``tile_alignment`` says."""
        y0, y1, x0, x1 = box
        return dataclasses.replace(self, jpeg=None if self.jpeg is None else self.jpeg.cut(box),
                                   mask=None if self.mask is None else self.mask[y0:y1, x0:x1].copy())

    def stages(self) -> Tuple[Tuple[str, int], ...]:
        """The phases a restore of one region runs, in order: (stage, steps) with stage one of
        STAGE_DENOISE (one step), STAGE_SPLIT (its rounds) and STAGE_MAP (its iterations)."""
        if self.start is None:
            return ()
        from flowrt.solve import inpaint, splitting
        first = {"denoise": ((STAGE_DENOISE, 1),), "split": ((STAGE_SPLIT, splitting.ROUNDS),),
                 "inpaint": ((STAGE_SPLIT, inpaint.ROUNDS),)}.get(self.start.kind, ())
        return first + (((STAGE_MAP, self.solver.iters),) if self.solver.iters else ())

    def describe_model(self) -> str:
        """The forward model in words: the noise, JPEG, scale, blur (and other degradations) and mask terms."""
        from flowrt.numeric import degradations
        parts = [f"noise sigma {self.sigma:.1f} ({self.sigma_source})" if self.sigma is not None
                 else f"no noise term ({self.sigma_source})"]
        parts.append(f"JPEG data term from {self.jpeg_source}" if self.jpeg is not None else "no JPEG term")
        if self.scale > 1:
            parts.append(f"x{self.scale} super-resolution (Pillow bicubic model)")
        parts.extend(degradations.describe(self.degradations))
        if self.mask is not None:
            parts.append(f"inpaint {int((~self.mask).sum())} missing pixels")
        return "; ".join(parts)

    def describe_method(self) -> str:
        """What runs, in words: "grouped denoiser then 20 flow-MAP iterations", "splitting start
        (grouped denoiser), 10 rounds, then 10 flow-MAP iterations", "inpainting: smooth fill ...",
        "blurred start (1.0 px) then 150 flow-MAP iterations", with the engine once it is bound."""
        if self.start is None:
            return ""
        cfg = self.solver
        space = "" if cfg.space == "image" else f" in {cfg.space} space"
        iterations = f"{cfg.iters} flow-MAP iteration{'' if cfg.iters == 1 else 's'}{space}" if cfg.iters \
            else "no flow-MAP iterations"
        first = dict(self.stages()).get(STAGE_SPLIT)
        unclip = ", clipped noise mapped back" if self.start.unclip else ""
        if self.start.kind == "denoise" and not cfg.iters:
            words = f"{self.denoiser} denoiser alone{unclip} (no flow-MAP iterations)"
        elif self.start.kind == "denoise":
            words = f"{self.denoiser} denoiser{unclip}{',' if unclip else ''} then {iterations}"
        elif self.start.kind == "split":
            words = f"splitting start ({self.denoiser} denoiser), {first} rounds, then {iterations}"
        elif self.start.kind == "inpaint":
            words = f"inpainting: smooth fill of the holes, then splitting ({self.denoiser} denoiser, " \
                    f"mask-blend data step), {first} rounds, then {iterations}"
        else:
            start = f"blurred start ({cfg.start_blur:g} px)" if cfg.start_blur else "start from the observation"
            words = f"{start} then {iterations}"
        return words + (f"; engine {self.engine} on {self.device}" if self.engine not in (None, NO_ENGINE) else "")

    def describe(self) -> str:
        """The whole plan in words: the forward model, then what runs (``describe_method``)."""
        method = self.describe_method()
        return self.describe_model() + (f"; {method}" if method else "")


def _resolve_jpeg(source, opts: RestoreOptions) -> tuple:
    """(JpegTerm or None, where it came from) for a Source."""
    if opts.jpeg == "off":
        return None, "off"
    if opts.jpeg == "auto":
        if source.jpeg is not None:
            return FileJpeg(source.jpeg), "the file's own tables"
        return _detected_jpeg(source)
    if source.jpeg is not None:
        raise InputError(f"{source.name} is a JPEG with its own tables; --jpeg {opts.jpeg} is for images "
                         "that were JPEG-compressed before being saved losslessly (use --jpeg auto or off)")
    return JpegQuality(int(opts.jpeg), source.greyscale), f"quality {opts.jpeg}"


def _detected_jpeg(source) -> tuple:
    """``--jpeg auto`` on a decoded image that is not a JPEG file: (JpegQuality, 'detected ...')
    when its 8x8 blocking says it was once a JPEG (flowrt.pipeline.jpeg_detect), else (None, 'off')."""
    from flowrt.pipeline.jpeg_detect import DETECT_SIDE, detect_jpeg
    w, h = source.size
    y0, x0 = (max(h - DETECT_SIDE, 0) // 2) // 16 * 16, (max(w - DETECT_SIDE, 0) // 2) // 16 * 16  # on the grid
    evidence = detect_jpeg(source.read_rgb(y0, min(h, y0 + DETECT_SIDE), x0, min(w, x0 + DETECT_SIDE)))
    log.info("%s", evidence.describe())
    if not evidence.detected:
        return None, "off (no JPEG blocking found)"
    return JpegQuality(evidence.quality, source.greyscale), f"detected JPEG blocking, quality {evidence.quality}"


def noise_sample(read: Callable[[int, int, int, int], np.ndarray], height: int, width: int) -> np.ndarray:
    """The pixels ``--sigma auto`` is estimated from: the whole image up to NOISE_SAMPLE_PIXELS,
    else a mosaic of NOISE_SAMPLE_CROP-square crops spread evenly over it (bounded memory and time
    for a gigapixel scan). read(y0, y1, x0, x1) -> float (y1-y0, x1-x0, C) in [0, 1]."""
    if height * width <= NOISE_SAMPLE_PIXELS:
        return read(0, height, 0, width)
    side = NOISE_SAMPLE_CROP
    per_axis = int(np.sqrt(NOISE_SAMPLE_PIXELS)) // side
    ys = np.linspace(0, max(height - side, 0), per_axis).astype(int) if height > side else [0]
    xs = np.linspace(0, max(width - side, 0), per_axis).astype(int) if width > side else [0]
    rows = [np.concatenate([read(y, min(y + side, height), x, min(x + side, width)) for x in xs], axis=1)
            for y in ys]
    return np.concatenate(rows, axis=0)


def resolve_sigma(sample: Optional[np.ndarray], opts: RestoreOptions, jpeg) -> tuple:
    """(sigma or None, how it was decided, the estimate or None) from the options and, for 'auto',
    ``noise_sample``'s pixels (None when the sigma is given)."""
    from flowrt.pipeline.noise_level import estimate_sigma
    if opts.sigma != "auto":
        return float(opts.sigma), "given", None
    estimate = estimate_sigma(sample)
    threshold = JPEG_NOISE_THRESHOLD if jpeg is not None else NOISE_THRESHOLD
    if estimate < threshold:
        return None, f"estimated {estimate:.1f}, below {threshold:g}", estimate
    if jpeg is not None:   # the decode shows what the JPEG left of the noise; the data term wants all of it
        from flowrt.pipeline.jpeg_noise import jpeg_tables, noise_before_jpeg
        before = noise_before_jpeg(estimate, jpeg_tables(jpeg), upper=MAX_SIGMA)
        return before, f"estimated before the JPEG; the decoded image reads {estimate:.1f}", estimate
    return estimate, "estimated", estimate


def _nothing_to_do(opts: RestoreOptions, sigma, estimate, jpeg, degradations, mask) -> Optional[str]:
    """Why a plan changes nothing worth a MAP run (a clean, non-JPEG input, no degradation asked
    for, no --force), or None."""
    if opts.force or sigma is not None or estimate is None or jpeg is not None or opts.scale > 1 \
            or degradations or mask is not None:
        return None
    return (f"nothing to restore: estimated noise {estimate:.1f} < {NOISE_THRESHOLD:g}; "
            "pass --sigma S or --force to restore anyway")


def plan_restoration(source, opts: RestoreOptions) -> RestorationPlan:
    """Resolve the options (valid by construction) against one opened input (a
    flowrt.pipeline.source.Source, decoded or streamed; ``source.from_image`` wraps a LoadedImage),
    read the mask and parse the degradations (a blur's kernel file) and, unless there is nothing to
    do, resolve the start, the iteration count and the schedule. The noise sample is read only for ``--sigma auto``."""
    w, h = source.size
    jpeg, jpeg_source = _resolve_jpeg(source, opts)
    sample = noise_sample(source.read_rgb, h, w) if opts.sigma == "auto" else None
    sigma, sigma_source, estimate = resolve_sigma(sample, opts, jpeg)
    from flowrt.numeric import degradations
    given = degradations.parse_given(opts)
    mask = None
    if opts.mask:
        from flowrt.numeric.observation import read_mask
        mask = read_mask(opts.mask, (h, w))
    plan = RestorationPlan(sigma, sigma_source, jpeg, jpeg_source, int(opts.scale), given, mask, estimate,
                           _nothing_to_do(opts, sigma, estimate, jpeg, given, mask),
                           denoiser=resolve_denoiser(opts.denoiser))
    return plan if plan.nothing_to_do else plan.with_method(opts.solver)
