"""flowrt's Python API: restore, score and measure images from code.

    import flowrt
    result = flowrt.restore("noisy.png", sigma=25, iters=100)
    result.image        # numpy array, the input's layout and dtype
    result.plan         # what was done (noise level, JPEG term, ...): result.plan.describe()

Images are a path (PNG, TIFF, JPEG, WebP, BMP; a JPEG's own quantisation tables are used), a numpy
array (uint8, uint16 or float in [0, 1]; (H, W) grey, (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA)
or a PIL image. Options are ``RestoreOptions`` fields and ``SolverConfig`` fields as keywords,
or one ``RestoreOptions``. The CLI maps its flags onto the same dataclasses and runs the same
pipeline (``flowrt.pipeline``); this module only adapts inputs and outputs for code.
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np

from flowrt.errors import InputError
from flowrt.pipeline.options import RestoreOptions
from flowrt.pipeline.plan import RestorationPlan
from flowrt.pipeline.run import TilingOptions

ImageLike = Union[str, os.PathLike, np.ndarray, Any]   # Any: a PIL.Image.Image
Progress = Optional[Callable[[int, int], None]]

__all__ = ["Restored", "restore", "load_prior", "estimate_noise", "score"]


@dataclass(frozen=True)
class Restored:
    """A restore's result.

    image: the restored image in the input's layout: (H*scale, W*scale) for grey, (..., 3) RGB,
        (..., 4) with the input's alpha (resized); uint8 0-255 for uint8 / 8-bit files, uint16
        0-65535 for uint16 / 16-bit files, in [0, 1] of the input's float type for a float input.
    plan: every decision resolved (``plan.describe()`` says it in words; ``plan.sigma`` is the
        noise std used, 0-255 scale, None for none; ``plan.sigma_estimate`` the blind estimate).
    options: the options it ran with. seconds: wall time of the whole call.
    """
    image: np.ndarray
    plan: RestorationPlan
    options: RestoreOptions
    seconds: float

    @property
    def unchanged(self) -> bool:
        """True when there was nothing to restore (``image`` is then the input's pixels)."""
        return self.plan.nothing_to_do is not None


def _load(image: ImageLike):
    """(LoadedImage, output dtype, squeeze grey to (H, W)) for any accepted image."""
    from flowrt.io.arrays import loaded_from_array, loaded_from_pil
    if isinstance(image, (str, os.PathLike)):
        from flowrt.io.image_file import read_image
        loaded = read_image(image)
        return loaded, (np.uint8 if loaded.bit_depth == 8 else np.uint16), True
    if isinstance(image, np.ndarray):
        dtype = image.dtype   # float16 comes back float16, float64 float64
        return loaded_from_array(image), dtype, image.ndim == 2
    if hasattr(image, "mode") and hasattr(image, "size") and hasattr(image, "convert"):  # PIL.Image.Image
        loaded = loaded_from_pil(image)
        return loaded, (np.uint16 if loaded.bit_depth == 16 else np.uint8), True
    raise InputError(f"an image must be a path, a numpy array or a PIL image, not {type(image).__name__}")


def _is_array(value) -> bool:
    return value is not None and not isinstance(value, (str, os.PathLike))


def observed_from_array(mask, hw) -> np.ndarray:
    """bool (H, W), True = observed, from a mask array at the image's size: (H, W) or (H, W, C), bool
    (True = missing) or numbers where white (>= half the range) = missing, as in a mask image."""
    from flowrt.numeric.observation import check_mask
    array = np.asarray(mask)
    if array.ndim == 3:
        array = array.mean(axis=2) if array.dtype != bool else array.any(axis=2)
    if array.dtype == bool:
        missing = array
    elif array.dtype.kind in "uif":
        top = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}.get(np.asarray(mask).dtype, 1)
        missing = array >= top / 2
    else:
        raise InputError(f"a mask array must hold booleans or numbers, not {array.dtype}")
    return check_mask(~missing, hw)


def _options(options: Optional[RestoreOptions], fields: dict) -> RestoreOptions:
    if options is not None and fields:
        raise InputError("pass either options=RestoreOptions(...) or option keywords, not both")
    return options if options is not None else RestoreOptions.from_fields(**fields)  # valid by construction


def restore(image: ImageLike, options: Optional[RestoreOptions] = None, *, model: Optional[Union[str, Path]] = None,
            prior: Any = None, tiling: Optional[TilingOptions] = None, progress: Progress = None,
            **fields: Any) -> Restored:
    """Restore one image; returns a ``Restored`` (the image and the resolved plan).

    image: a path, a numpy array or a PIL image (see the module docstring for layouts and ranges).
    options / fields: a RestoreOptions, or its fields and SolverConfig's as keywords, e.g.
        ``sigma=25`` (noise std, 0-255 scale; default 'auto': estimated), ``jpeg=40``, ``scale=2``,
        ``blur='gaussian:1.5'``, ``mask='holes.png'``, ``iters=150``, ``lam=0.5``, ``device='cuda:1'``,
        ``force=True`` (restore a clean image too; by default it is returned unchanged, fast).
        ``mask`` may be a mask image's path or an array at the image's size (True / white = missing).
    model: an exported prior's folder or packaged name (default: the packaged prior); ignored when
        ``prior`` (from ``load_prior``, to reuse across calls) is given.
    tiling: TilingOptions (default: whole up to 640x640 output pixels, tiles of at most 512 above).
    progress: callback(stage, done, total) per step of each phase of ``plan.stages()``: 'denoise'
        (the denoised start, one step), 'split' (the splitting start's rounds), 'MAP' (iterations);
        of the current tile when tiled.
    InputError / ModelError (both flowrt.errors.FlowrtError) for a bad image, option or model.
    """
    from flowrt.io.arrays import like_array
    from flowrt.pipeline.plan import plan_restoration
    from flowrt.pipeline.run import check_machine, restore_in_memory
    from flowrt.pipeline.source import from_image
    start = time.monotonic()
    mask = fields.pop("mask") if _is_array(fields.get("mask")) else None
    opts = _options(options, fields)
    if _is_array(opts.mask):
        mask, opts = opts.mask, dataclasses.replace(opts, mask=None)
    tiling = tiling or TilingOptions()
    loaded, dtype, squeeze = _load(image)
    w, h = loaded.size
    source = from_image(loaded, loaded.source or loaded.name, tiling.tile_side(h * opts.scale, w * opts.scale))
    with source:
        plan = plan_restoration(source, opts)
        if mask is not None:   # given as an array: the plan reads only mask files
            plan = dataclasses.replace(plan, mask=observed_from_array(mask, (h, w)),
                                       nothing_to_do=None).with_method(opts.solver)   # the mask decides the start
        if plan.nothing_to_do is not None:
            rgb = loaded.rgb
        else:
            check_machine(source, int(opts.scale), "-")
            device, prior = _engine(model, prior, opts) if plan.needs_prior or prior is not None else _no_prior(opts)
            plan = plan.with_engine(prior, device)
            settings = _settings(source, plan, prior, tiling)
            rgb = restore_in_memory(source, plan, prior, settings, device=device, on_step=progress)
    return Restored(like_array(rgb, loaded, dtype, squeeze), plan, opts, time.monotonic() - start)


def _settings(source, plan: RestorationPlan, prior, tiling: TilingOptions):
    from flowrt.pipeline.run import prior_multiple, tile_settings
    if not source.tile:
        return None
    w, h = source.size
    return tile_settings(h, w, plan, prior_multiple(prior), source.tile, tiling.overlap)


def _no_prior(opts: RestoreOptions):
    """(None, None) for a restore that loads no prior, after the checks loading one would make first."""
    from flowrt.prior.engines import check_engine_request
    check_engine_request(opts.engine, opts.device)
    return None, None


def _engine(model, prior, opts: RestoreOptions):
    """(device, prior): ``prior`` if given (its engine decides the loop; a torch prior runs on the
    options' device), else the options' engine loaded (``flowrt.prior.engines.open_engine``)."""
    from flowrt.prior.engines import engine_of, open_engine
    if prior is None:
        return open_engine(model, opts.engine, opts.device, opts.solver.space)
    if engine_of(prior) == "ort":
        if opts.solver.space != "image":
            raise InputError("this prior runs on ONNX Runtime (engine 'ort'), which optimises over the image; "
                             "the latent space needs a torch prior")
        return prior.device, prior
    from flowrt.device import resolve_device
    return resolve_device(opts.device), prior


def load_prior(name_or_dir: Optional[Union[str, Path]] = None, *, engine: str = "auto", device: str = "auto"):
    """The prior a restore runs with, loaded once to reuse: ``restore(img, prior=p)``.

    name_or_dir: an exported prior's folder or a packaged model's name (default: the packaged
    prior). engine: 'auto' or 'torch' (autograd through the flow) or 'ort' (its exported ONNX
    gradient, run by the numpy MAP loop without torch). device: auto, cpu, cuda or cuda:N.
    ModelError for a missing or tampered folder.
    """
    from flowrt.prior.engines import open_engine
    RestoreOptions(engine=engine, device=device)  # checks both names
    return open_engine(name_or_dir, engine, device)[1]


def estimate_noise(image: ImageLike) -> float:
    """The blind Gaussian noise std of ``image`` per channel, on the 0-255 scale (what
    ``sigma='auto'`` uses), for grey or colour images, including grey stored as RGB."""
    from flowrt.pipeline.noise_level import estimate_sigma
    from flowrt.pipeline.plan import noise_sample
    loaded = _load(image)[0]
    w, h = loaded.size
    return estimate_sigma(noise_sample(lambda y0, y1, x0, x1: loaded.rgb[y0:y1, x0:x1], h, w))


def score(image: ImageLike, *, model: Optional[Union[str, Path]] = None, dequant: str = "uniform", seed: int = 0,
          device: str = "auto"):
    """The code length of ``image``'s 8-bit pixels under the prior, in bits per dimension
    (``flowrt.prior.scoring.Score``: ``.bits_per_dim``; sides not divisible by 2^levels are
    centre-cropped and the Score says so). Lower means more typical of clean photos, but an
    over-smoothed image also scores low. dequant: 'uniform' (seeded) or 'mid'. device: auto, cpu, cuda.
    """
    from flowrt.prior.onnx_backend import Prior
    from flowrt.prior.scoring import score_rgb8
    loaded = _load(image)[0]
    rgb8 = np.clip(np.round(loaded.rgb.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    return score_rgb8(Prior(model, device=device), rgb8, dequant=dequant, seed=seed, bit_depth=loaded.bit_depth)
