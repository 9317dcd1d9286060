"""The options ``restore`` and ``batch`` share, and their mapping onto the runtime's frozen option
dataclasses (``RestoreOptions``, ``OutputOptions``, ``TilingOptions``): each flag is one field.
Click checks only a value's form (a number, a word from a list); what it means (its range) is
checked in those dataclasses, whose one-line error becomes a usage error here (exit 2). Defaults
shown in --help are the library's."""
from __future__ import annotations

import click

from flowrt.denoise.base import denoiser_choices
from flowrt.device import DEVICE_CHOICES
from flowrt.io.formats import FORMAT_CHOICES
from flowrt.numeric.degradations import REGISTRY as DEGRADATIONS
from flowrt.prior.engines import ENGINES
from flowrt.solve.config import SPACES, STARTS, SolverConfig

_SOLVER = SolverConfig()


class WordOrNumber(click.ParamType):
    """One of ``words``, or a number of type ``number`` (its range: RestoreOptions.validate)."""

    def __init__(self, words, number, what: str):
        self.words, self.number, self.what = tuple(words), number, what
        self.name = "|".join(self.words) + ("|S" if number is float else "|Q")

    def convert(self, value, param, ctx):
        if value in self.words or isinstance(value, self.number):
            return value
        try:
            return self.number(value)
        except ValueError:
            self.fail(f"{value!r} is not {self.what}", param, ctx)


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


SIGMA = WordOrNumber(["auto"], float, "'auto' or a number")
JPEG = WordOrNumber(["auto", "off"], int, "auto, off or a quality 1-100")

_OPTIONS = [
    click.option("--sigma", type=SIGMA, default="auto", show_default=True,
                 help="Gaussian noise std on the 0-255 scale; 'auto' estimates it from the image."),
    click.option("--jpeg", type=JPEG, default="auto", show_default=True,
                 help="JPEG data term: auto (a JPEG input uses its own tables; any other input is checked for 8x8 "
                      "JPEG blocking and its quality estimated), off, or the quality Q a PNG was once saved at."),
    click.option("--scale", type=int, default=1, show_default=True,
                 help="Super-resolution factor (the input was Pillow-bicubic downsampled by it)."),
    *(click.option(d.flag, d.option, metavar=d.metavar, help=d.help + "  [default: none]")
      for d in DEGRADATIONS.values()),   # --blur and every other registered degradation
    click.option("--mask", type=click.Path(dir_okay=False),
                 help="Inpainting mask at the input's size: white = missing (to fill), black = observed.  [default: none]"),
    click.option("--force", is_flag=True,
                 help="Restore even a clean input with no degradation given (else it is written unchanged)."),
    click.option("--model", "model_dir", type=click.Path(file_okay=False),
                 help="Exported prior folder.  [default: the packaged prior]"),
    click.option("--space", type=click.Choice(SPACES), default=_SOLVER.space, show_default=True,
                 help="Optimise over the image or the flow's latent."),
    click.option("--iters", type=int, default=None,
                 help="MAP iterations.  [default: 10 after a split start, 20 after a denoised one, 150 otherwise]"),
    click.option("--start", type=click.Choice(STARTS), default=_SOLVER.start,
                 show_default=True,
                 help="Where the MAP starts (split and denoise need a noise level or a JPEG term): split "
                      "alternates the chain's data term with a grouped denoiser (for --scale or --blur); "
                      "denoise denoises the observation and enlarges it; blur lightly blurs it. auto picks "
                      "split, then denoise, where they apply; with --mask alone, auto and split fill the "
                      "holes smoothly, then by splitting with the denoiser (no noise level needed)."),
    click.option("--denoiser", default="auto", show_default=True, metavar="|".join(denoiser_choices()),
                 help="flow: the group flow's Tweedie estimate (for noise alone it is the restore; for other damage the start the MAP refines); grouped: the classical grouped denoiser (BM3D's recipe) as the start; auto: flow."),
    click.option("--lam", type=float, default=_SOLVER.lam, show_default=True,
                 help="Prior weight lambda, per observed pixel."),
    click.option("--coarse-prior", type=float, default=_SOLVER.coarse_prior, show_default=True,
                 help="With --scale > 1: weight (times lambda) of the prior on the estimate downsampled back to the input's grid."),
    click.option("--device", type=DeviceParam(), default="auto", show_default=True, metavar=DEVICE_CHOICES,
                 help="Where the MAP runs: auto (CUDA when there is one), cpu, cuda, or cuda:N (GPU N)."),
    click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
                 help="What runs the MAP: ort (the exported ONNX Runtime gradient, numpy loop, no torch), "
                      "torch (autograd; latent space, CUDA), or auto (ort on the CPU when the model has its "
                      "gradient graph, else torch)."),
    click.option("--seed", type=int, default=_SOLVER.seed, show_default=True, help="Random seed (0 to 2^63-1)."),
    click.option("--accept-fallback", is_flag=True,
                 help="If the optimiser fails, write its starting estimate (the input, smoothed) and exit 0 "
                      "instead of failing."),
    click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default=None,
                 help="Output format.  [default: from OUT's suffix; batch: as the input, PNG for a JPEG or WebP]"),
    click.option("--quality", type=int, default=None,
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


def _usage_error(make):
    """``make()``, a dataclass that validates itself; its InputError becomes a click usage error."""
    from flowrt.errors import InputError
    try:
        return make()
    except InputError as exc:
        raise click.UsageError(str(exc)) from None


def build_options(**fields):
    """RestoreOptions from the CLI values (None: keep the library default)."""
    from flowrt.pipeline.options import RestoreOptions
    return _usage_error(lambda: RestoreOptions.from_fields(**fields))


def build_output(fmt, quality, bit_depth):
    """OutputOptions from the CLI values."""
    from flowrt.pipeline.output import OutputOptions
    return _usage_error(lambda: OutputOptions(format=fmt, quality=quality,
                                              bit_depth=int(bit_depth) if bit_depth else None))


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
    click.option("--tile", type=int, default=None, metavar="N",
                 help="Restore in N x N tiles (output pixels; 0 = whole image).  [default: whole up to "
                      "640x640 output pixels, tiles of at most 512 above]"),
    click.option("--overlap", type=int, default=32, show_default=True,
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

    return _usage_error(lambda: TilingOptions(tile=tile, overlap=overlap, resume=resume))
