"""What the user asks a restore to do: ``RestoreOptions``, the one frozen dataclass the CLI, the
Python API (``flowrt.restore``) and the pipeline share. Each CLI flag maps to one field, and the
meaning of every field is checked here, in ``validate``, and nowhere else: it runs when an instance
is made (``__post_init__``, also on ``dataclasses.replace``), so a RestoreOptions that exists is valid
and no caller validates it again. The CLI's click types check only the form of a value."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from flowrt.denoise.base import resolve_denoiser
from flowrt.device import check_device_name
from flowrt.errors import InputError
from flowrt.prior.engines import ENGINES
from flowrt.solve.config import SolverConfig

# A noise std above the whole 0-255 range means nothing; huge values also overflowed the
# data term's float arithmetic (--sigma 1e300 ended in an OverflowError traceback).
MAX_SIGMA = 255.0


@dataclass(frozen=True)
class RestoreOptions:
    """A restore's options. Every field has the default ``flowrt restore`` uses.

    sigma: 'auto' (estimated from the image) or the Gaussian noise std on the 0-255 scale, 0-255.
    jpeg: 'auto' (a JPEG input uses its own tables; another input found to hold JPEG blocking,
        flowrt.pipeline.jpeg_detect, its estimated quality), 'off', or the IJG quality 1-100 a
        (non-JPEG) input was once compressed at.
    scale: integer super-resolution factor 1-16 (the input was Pillow-bicubic downsampled by it).
    blur: None, 'gaussian:S' (std in pixels) or the path of a kernel image / .npy file.
    mask: None or the path of a mask image at the input's size, white = missing.
    solver: the MAP settings (iterations, prior weight, space, seed, ...).
    device: 'auto', 'cpu', 'cuda' or 'cuda:N'.
    engine: what runs the MAP: 'ort' (ONNX Runtime's prior gradient, the numpy loop, no torch),
        'torch' (autograd) or 'auto' (``flowrt.prior.engines.choose_engine``: ort on the CPU in image
        space when the model has its gradient graph, else torch).
    force: restore even when the plan finds nothing to restore (a clean, non-JPEG input with
        no degradation given); otherwise such an input is returned unchanged.
    denoiser: the denoiser of the denoised and split starts: 'auto' or a name of
        ``flowrt.denoise.DENOISERS`` (the plan resolves 'auto' once).
    """
    sigma: Union[str, float] = "auto"
    jpeg: Union[str, int] = "auto"
    scale: int = 1
    blur: Optional[str] = None
    mask: Optional[str] = None
    solver: SolverConfig = field(default_factory=SolverConfig)
    device: str = "auto"
    engine: str = "auto"
    force: bool = False
    denoiser: str = "auto"

    @classmethod
    def from_fields(cls, **fields: Any) -> "RestoreOptions":
        """Options from flat keywords: any RestoreOptions field and any SolverConfig field (iters,
        lam, space, seed, coarse_prior, ...); a None value keeps the default. Validated;
        InputError for an unknown name or a bad value."""
        own = {f.name for f in dataclasses.fields(cls)} - {"solver"}
        solver_names = {f.name for f in dataclasses.fields(SolverConfig)}
        unknown = sorted(set(fields) - own - solver_names)
        if unknown:
            raise InputError(f"unknown restore option(s): {', '.join(unknown)}")
        given = {k: v for k, v in fields.items() if v is not None}
        solver = dataclasses.replace(SolverConfig(), **{k: v for k, v in given.items() if k in solver_names})
        return cls(solver=solver, **{k: v for k, v in given.items() if k in own})

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "RestoreOptions":
        if self.engine not in ENGINES:
            raise InputError(f"--engine must be one of {', '.join(ENGINES)}, not {self.engine!r}")
        if self.engine == "ort" and self.solver.space != "image":
            raise InputError("--engine ort optimises over the image; the latent space needs --engine torch")
        if self.sigma != "auto":
            if isinstance(self.sigma, bool) or not isinstance(self.sigma, (int, float)) \
                    or not 0 <= self.sigma <= MAX_SIGMA:
                raise InputError(f"--sigma must be 'auto' or a number from 0 to {MAX_SIGMA:g} (0-255 scale), "
                                 f"got {self.sigma!r}")
        if self.jpeg not in ("auto", "off") and not (isinstance(self.jpeg, int) and 1 <= self.jpeg <= 100):
            raise InputError(f"--jpeg must be auto, off or a quality 1-100, got {self.jpeg!r}")
        if not isinstance(self.scale, (int, float)) or int(self.scale) != self.scale or not 1 <= self.scale <= 16:
            raise InputError(f"--scale must be a whole number from 1 to 16, got {self.scale}")
        check_device_name(self.device)
        resolve_denoiser(self.denoiser)
        if not isinstance(self.solver, SolverConfig):
            raise InputError(f"solver must be a SolverConfig, not {type(self.solver).__name__}")
        return self
