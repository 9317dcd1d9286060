"""The options ``restore`` and ``batch`` share, and their mapping onto the runtime's frozen option
dataclasses (``RestoreOptions``, ``OutputOptions``, ``TilingOptions``): each flag is one field,
and what a value means is checked there, not here. Defaults shown in --help are the library's."""
from __future__ import annotations

import click

from flowrt.device import DEVICE_CHOICES
from flowrt.io.formats import FORMAT_CHOICES
from flowrt.solve.config import SolverConfig

_SOLVER = SolverConfig()


class SigmaParam(click.ParamType):
    name = "auto|S"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)) or value == "auto":
            return value
        try:
            sigma = float(value)
        except ValueError:
            self.fail(f"{value!r} is neither 'auto' nor a number", param, ctx)
        if not 0 <= sigma <= 255:  # also refuses nan; above 255 overflowed the data term
            self.fail(f"noise sigma must be from 0 to 255 (0-255 scale), got {value}", param, ctx)
        return sigma


class JpegParam(click.ParamType):
    name = "auto|off|Q"

    def convert(self, value, param, ctx):
        if value in ("auto", "off") or isinstance(value, int):
            return value
        try:
            quality = int(value)
        except ValueError:
            self.fail(f"{value!r} is not auto, off or a quality 1-100", param, ctx)
        if not 1 <= quality <= 100:
            self.fail(f"JPEG quality must be 1-100, got {quality}", param, ctx)
        return quality


class DeviceParam(click.ParamType):
    """auto | cpu | cuda | cuda:N, spelled right (whether the machine has it is checked later, once)."""
    name = DEVICE_CHOICES

    def convert(self, value, param, ctx):
        from flowrt.device import check_device_name
        from flowrt.errors import InputError
        try:
            return check_device_name(value)
        except InputError as exc:
            self.fail(str(exc).replace("--device must be", "must be"), param, ctx)


_OPTIONS = [
    click.option("--sigma", type=SigmaParam(), default="auto", show_default=True,
                 help="Gaussian noise std on the 0-255 scale; 'auto' estimates it from the image."),
    click.option("--jpeg", type=JpegParam(), default="auto", show_default=True,
                 help="JPEG data term: auto (a JPEG input uses its own tables), off, or the quality Q a PNG was once saved at."),
    click.option("--scale", type=click.IntRange(1, 16), default=1, show_default=True,
                 help="Super-resolution factor (the input was Pillow-bicubic downsampled by it)."),
    click.option("--blur", metavar="SPEC", help="Known blur: 'gaussian:S' (std in px) or a kernel image/.npy file.  [default: none]"),
    click.option("--mask", type=click.Path(dir_okay=False),
                 help="Inpainting mask at the input's size: white = missing (to fill), black = observed.  [default: none]"),
    click.option("--force", is_flag=True,
                 help="Restore even a clean input with no degradation given (else it is written unchanged)."),
    click.option("--model", "model_dir", type=click.Path(file_okay=False),
                 help="Exported prior folder.  [default: the packaged prior]"),
    click.option("--space", type=click.Choice(["image", "latent"]), default=_SOLVER.space, show_default=True,
                 help="Optimise over the image or the flow's latent."),
    click.option("--iters", type=click.IntRange(min=0), default=None,
                 help="MAP iterations.  [default: 10 after a split start, 20 after a denoised one, 150 otherwise]"),
    click.option("--start", type=click.Choice(["auto", "split", "denoise", "blur"]), default=_SOLVER.start,
                 show_default=True,
                 help="Where the MAP starts (split and denoise need a noise level or a JPEG term): split "
                      "alternates the chain's data term with a grouped denoiser (for --scale or --blur); "
                      "denoise denoises the observation and enlarges it; blur lightly blurs it. auto picks "
                      "split, then denoise, where they apply."),
    click.option("--lam", type=click.FloatRange(min=0), default=_SOLVER.lam, show_default=True,
                 help="Prior weight lambda, per observed pixel."),
    click.option("--coarse-prior", type=click.FloatRange(min=0), default=_SOLVER.coarse_prior, show_default=True,
                 help="With --scale > 1: weight (times lambda) of the prior on the estimate downsampled back to the input's grid."),
    click.option("--device", type=DeviceParam(), default="auto", show_default=True, metavar=DEVICE_CHOICES,
                 help="Where the MAP runs: auto (CUDA when there is one), cpu, cuda, or cuda:N (GPU N)."),
    click.option("--engine", type=click.Choice(["auto", "torch", "ort"]), default="auto", show_default=True,
                 help="What runs the MAP: ort (the exported ONNX Runtime gradient, numpy loop, no torch), "
                      "torch (autograd; latent space, CUDA), or auto (ort on the CPU when the model has its "
                      "gradient graph, else torch)."),
    click.option("--seed", type=int, default=_SOLVER.seed, show_default=True, help="Random seed (0 to 2^63-1)."),
    click.option("--accept-fallback", is_flag=True,
                 help="If the optimiser fails, write its starting estimate (the input, smoothed) and exit 0 "
                      "instead of failing."),
    click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default=None,
                 help="Output format.  [default: from OUT's suffix; batch: as the input, PNG for a JPEG or WebP]"),
    click.option("--quality", type=click.IntRange(1, 100), default=None,
                 help="JPEG/WebP output quality.  [default: JPEG 95 with full-resolution colour, WebP lossless]"),
    click.option("--bit-depth", type=click.Choice(["8", "16"]), default=None,
                 help="Output bits per sample.  [default: as the input; 8 for JPEG, WebP, BMP]"),
    click.option("-q", "--quiet", is_flag=True, help="No summary line (errors are still reported)."),
    click.option("-v", "--verbose", count=True, help="Say what was estimated and done (-vv: debug log)."),
]


def restoration_options(func):
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def build_options(**fields):
    """RestoreOptions from the CLI values (None: keep the library default)."""
    from flowrt.pipeline.options import RestoreOptions
    return RestoreOptions.from_fields(**fields)


def build_output(fmt, quality, bit_depth):
    """OutputOptions from the CLI values."""
    from flowrt.pipeline.output import OutputOptions
    return OutputOptions(format=fmt, quality=quality, bit_depth=int(bit_depth) if bit_depth else None).validate()


def _set_max_pixels(ctx, param, value):
    """--max-pixels: the one pixel limit (``flowrt.io.limits``) for this run, set as it is parsed."""
    from flowrt.errors import InputError
    from flowrt.io.limits import parse_max_pixels, set_max_pixels
    if value is None:   # back to FLOWRT_MAX_PIXELS or the defaults (an earlier in-process run set it)
        set_max_pixels("default")
        return None
    try:
        set_max_pixels(parse_max_pixels(value))
    except InputError as exc:
        raise click.BadParameter(str(exc).replace("--max-pixels ", ""), ctx, param) from None
    return value


_TILING_OPTIONS = [
    click.option("--tile", type=click.IntRange(min=0), default=None, metavar="N",
                 help="Restore in N x N tiles (output pixels; 0 = whole image).  [default: whole up to "
                      "1024x1024 output pixels, tiles of 512 above]"),
    click.option("--overlap", type=click.IntRange(min=0), default=32, show_default=True,
                 help="Pixels neighbouring tiles share (blended smoothly)."),
    click.option("--resume", is_flag=True, help="Continue an interrupted tiled restore from its finished tiles."),
    click.option("--max-pixels", metavar="N|none", default=None, expose_value=False, callback=_set_max_pixels,
                 help="Largest width x height read (also FLOWRT_MAX_PIXELS; 'none': no limit).  [default: "
                      "Pillow's 89478485 for images decoded whole, a gigapixel for TIFF to TIFF streamed]"),
]


def tiling_options(func):
    for option in reversed(_TILING_OPTIONS):
        func = option(func)
    return func


def build_tiling(tile, overlap, resume):
    """TilingOptions from the CLI values."""
    from flowrt.pipeline.run import TilingOptions

    return TilingOptions(tile=tile, overlap=overlap, resume=resume).validate()
