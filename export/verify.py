"""Verification of an exported prior: the ONNX graphs must be the trained model's density.

Checks, each a figure against a documented limit (``TOLERANCES``):

* ``checker``: onnx.checker (full check with shape inference) on both graphs.
* ``parity``: ORT against the torch model at 96x160 (batch 2) and 256x384 (batch 1; sides
  rounded up to the size rule), on a natural-looking synthetic photo and on uniform noise: the
  latent, the forward log-det and log p(x); the inverse on the torch latent of the natural image
  and on a standard-normal draw: the image and the inverse log-det.
* ``round_trip``: ORT inverse(ORT forward(x)) against x, both inputs.
* ``jacobian``: the exported forward log-det against log|det J|, with J the Jacobian of the
  exported forward graph itself by central differences (float64 arithmetic on ORT's outputs) on
  a tiny input; and against the float64 autograd Jacobian of the torch model at the same point.
* ``prior_grad`` / ``generator_vjp`` (where the folder holds the gradient graphs): their outputs
  against float64 autograd at two sizes (export/grad_verify.py).
* ``forward+inverse logdet``: forward log-det + inverse log-det = 0 at matching points (x, ORT u)
  of the natural images (on uniform noise a trained flow's float32 inverse does not return to x,
  in torch as in ORT, so those are no matching points; the round trip there is still reported).

Where the torch float32 model itself misses the float64 reference by more than a tolerance (the
off-distribution inputs), a figure passes at up to MODEL_FACTOR times the model's own error: the
export must be as exact as the model, not more.

Figures are relative or per dimension, so one limit holds at every size:
latent ``max|du| / max(1, max|u|)``; images ``max|dx|`` on the [0, 1] scale; densities
``|d log| / D`` in nats per dimension (1 nat/dim = 1.44 bits/dim).
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from flowrt.prior.folders import FORWARD_ONNX, GRADIENT_FILES, INVERSE_ONNX
from flowrt.prior.onnx_backend import open_session, select_providers
from flowrt.prior.flow import FlowModel, log_normal

PARITY_SIZES = ((2, 96, 160), (1, 256, 384))   # (batch, height, width) before rounding to the size rule
# Central-difference step on the [0, 1] scale. The coupling nets are piecewise linear (ReLU), so
# steps that cross kinks dominate the error, not float32 rounding, down to about 1e-3.
JACOBIAN_STEP = {"float32": 1e-3, "float16": 3e-2}
MODEL_FACTOR = 3.0   # an ORT figure may be this many times the torch float32 model's own figure


@dataclass(frozen=True)
class Tolerances:
    """Limits for each kind of figure (see the module docstring for the units)."""
    latent_rel: float
    image_abs: float
    density_per_dim: float
    round_trip_abs: float
    jacobian_fd_per_dim: float
    jacobian_exact_per_dim: float


# float32: float32 rounding through ~100 layers, with a margin of 10x or more on the figures measured
# on natural inputs (each parity limit also widens to MODEL_FACTOR x the torch float32 model's own
# error). Densities per dimension do not grow with the image: the graphs sum log-dets in float64.
# The finite-difference Jacobian limit, 1e-3 nats/dim, sits far above its measured kink noise
# (~5e-5 to 1.2e-4) and far below what a missing or mis-scaled log-det term costs (>= 0.05 nats/dim).
# float16: the figures a restoration can live with: densities within 0.005 bits/dim, images within
# half an 8-bit level.
TOLERANCES: Dict[str, Tolerances] = {
    "float32": Tolerances(latent_rel=1e-4, image_abs=1e-4, density_per_dim=2e-5, round_trip_abs=1e-4,
                          jacobian_fd_per_dim=1e-3, jacobian_exact_per_dim=2e-5),
    "float16": Tolerances(latent_rel=2e-2, image_abs=2e-3, density_per_dim=3.5e-3, round_trip_abs=2e-3,
                          jacobian_fd_per_dim=3.5e-3, jacobian_exact_per_dim=3.5e-3),
}


@dataclass
class Check:
    """One figure of the exported graphs; ``torch_float32`` is the torch model's own, where it has one."""
    name: str
    value: float
    limit: float
    unit: str
    torch_float32: Optional[float] = None

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.value)) and self.value <= self.limit


@dataclass
class Report:
    precision: str
    providers: List[str]
    checks: List[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def failures(self) -> List[Check]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict:
        """Plain data for the manifest (floats rounded to 3 significant digits)."""
        return {"passed": self.passed, "precision": self.precision, "providers": self.providers,
                "tolerances": asdict(TOLERANCES[self.precision]),
                "model_factor": MODEL_FACTOR,
                "checks": [{"name": c.name, "value": float(f"{c.value:.3g}"), "limit": c.limit, "unit": c.unit,
                            "torch_float32": c.torch_float32, "passed": c.passed} for c in self.checks]}

    def lines(self) -> List[str]:
        """One human-readable line per check."""
        return [f"{'ok  ' if c.passed else 'FAIL'} {c.name:<46} {c.value:9.3g} <= {c.limit:<8.3g} {c.unit:<10}"
                + ("" if c.torch_float32 is None else f" (torch float32: {c.torch_float32:.3g})")
                for c in self.checks]


def natural_image(batch: int, height: int, width: int, seed: int) -> np.ndarray:
    """(B,3,H,W) float32 in [0,1): smooth shading, hard-edged shapes and grain, 8-bit dequantised.

    Not a photo, but it has what the parity checks need from one: large flat and smooth areas,
    edges and fine texture, values well inside [0, 1], rather than the noise of a uniform draw.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    img = np.empty((batch, 3, height, width))
    for b in range(batch):
        base = 0.5 + 0.2 * np.cos(2 * np.pi * (rng.uniform(0.3, 2) * xx + rng.uniform(0.3, 2) * yy))
        colour = base[None] * rng.uniform(0.6, 1.2, (3, 1, 1))
        for _ in range(4):  # rectangles: hard edges in every channel
            top, left = rng.uniform(0, 0.8, 2)
            inside = (yy > top) & (yy < top + rng.uniform(0.1, 0.4)) & (xx > left) & (xx < left + rng.uniform(0.1, 0.4))
            colour = np.where(inside[None], rng.uniform(0.1, 0.9, (3, 1, 1)), colour)
        img[b] = colour + rng.normal(0, 0.02, colour.shape)
    levels = np.clip(np.round(img * 255), 0, 255)
    return ((levels + rng.uniform(0, 1, levels.shape)) / 256).astype(np.float32)


def random_image(batch: int, height: int, width: int, seed: int) -> np.ndarray:
    """(B,3,H,W) float32 uniform on [0,1): the far-off-distribution input."""
    return np.random.default_rng(seed).uniform(0, 1, (batch, 3, height, width)).astype(np.float32)


class Graphs:
    """The two ORT sessions of a folder under verification."""

    def __init__(self, folder: Path):
        providers = select_providers("auto")
        self.forward = open_session(folder / FORWARD_ONNX, providers)
        self.inverse = open_session(folder / INVERSE_ONNX, providers)
        self.providers = list(self.forward.get_providers())

    def encode(self, x: np.ndarray):
        return self.forward.run(None, {"x": x})

    def decode(self, u: np.ndarray):
        return self.inverse.run(None, {"u": u})


def _per_dim(a, b, dims: int) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) / dims


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def _abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _check(name: str, ort_figure: float, torch_figure: float, tolerance: float, unit: str) -> Check:
    """A figure of the ORT graph, with the torch float32 model's own figure widening the limit.

    Where float32 itself cannot do better (uniform noise is far off the data, and the flow's
    float32 arithmetic there is ill-conditioned), the export must only be as good as the model.
    """
    limit = max(tolerance, MODEL_FACTOR * torch_figure)
    return Check(name, ort_figure, float(f"{limit:.3g}"), unit, float(f"{torch_figure:.3g}"))


class _Torch:
    """The torch model in float32 (what users load) and float64 (the reference)."""

    def __init__(self, model: FlowModel):
        self.f32 = model
        self.f64 = copy.deepcopy(model).double().freeze()

    @torch.no_grad()
    def encode(self, x: np.ndarray, double: bool):
        m = self.f64 if double else self.f32
        u, logdet = m(torch.from_numpy(x).to(torch.float64 if double else torch.float32))
        return u.numpy(), logdet.numpy(), (log_normal(u) + logdet).numpy()

    @torch.no_grad()
    def decode(self, u: np.ndarray, double: bool):
        m = self.f64 if double else self.f32
        x, logdet = m.inverse(torch.from_numpy(u).to(torch.float64 if double else torch.float32))
        return x.numpy(), logdet.numpy()


def forward_checks(graphs: Graphs, ref: _Torch, tol: Tolerances, x: np.ndarray, tag: str, pair: bool) -> List[Check]:
    """Latent, log-det, log p and round trip for one batch of images; with ``pair``, also
    forward log-det + inverse log-det at (x, ORT latent), which are matching points only where
    the round trip holds."""
    dims = x[0].size
    exact, torch32, ort = ref.encode(x, True), ref.encode(x, False), graphs.encode(x)
    checks = [_check(f"forward latent {tag}", _rel(ort[0], exact[0]), _rel(torch32[0], exact[0]), tol.latent_rel, "relative"),
              _check(f"forward logdet {tag}", _per_dim(ort[1], exact[1], dims), _per_dim(torch32[1], exact[1], dims),
                     tol.density_per_dim, "nats/dim"),
              _check(f"forward log_prob {tag}", _per_dim(ort[2], exact[2], dims), _per_dim(torch32[2], exact[2], dims),
                     tol.density_per_dim, "nats/dim")]
    back, back_logdet = graphs.decode(ort[0])
    torch_back, torch_back_logdet = ref.decode(torch32[0], False)
    checks.append(_check(f"round trip {tag}", _abs(back, x), _abs(torch_back, x), tol.round_trip_abs, "abs [0,1]"))
    if pair:
        checks.append(_check(f"forward+inverse logdet {tag}", _per_dim(ort[1], -back_logdet, dims),
                             _per_dim(torch32[1], -torch_back_logdet, dims), tol.density_per_dim, "nats/dim"))
    return checks


def inverse_checks(graphs: Graphs, ref: _Torch, tol: Tolerances, u: np.ndarray, tag: str) -> List[Check]:
    """Image and inverse log-det of the ORT inverse graph for one batch of latents."""
    dims = u[0].size
    exact, torch32, ort = ref.decode(u, True), ref.decode(u, False), graphs.decode(u)
    return [_check(f"inverse image {tag}", _abs(ort[0], exact[0]), _abs(torch32[0], exact[0]), tol.image_abs, "abs [0,1]"),
            _check(f"inverse logdet {tag}", _per_dim(ort[1], exact[1], dims), _per_dim(torch32[1], exact[1], dims),
                   tol.density_per_dim, "nats/dim")]


def parity_checks(graphs: Graphs, ref: _Torch, tol: Tolerances, size: Tuple[int, int, int]) -> List[Check]:
    """ORT against torch at one size: natural and random images forward, natural and random latents inverse."""
    batch, h, w = size
    natural = natural_image(batch, h, w, seed=h)
    checks = forward_checks(graphs, ref, tol, natural, f"{h}x{w} natural", pair=True)
    # Uniform noise is far off the data: there a trained flow's float32 inverse does not return to
    # x (torch's own round trip misses by O(1)), so (x, u) are no matching points for the pair check.
    checks += forward_checks(graphs, ref, tol, random_image(batch, h, w, seed=w), f"{h}x{w} random", pair=False)
    natural_latent = ref.encode(natural, False)[0]
    normal_latent = np.random.default_rng(h + w).standard_normal((batch, 3, h, w)).astype(np.float32)
    checks += inverse_checks(graphs, ref, tol, natural_latent, f"{h}x{w} natural latent")
    checks += inverse_checks(graphs, ref, tol, normal_latent, f"{h}x{w} normal latent")
    return checks


def fd_log_abs_det(graphs: Graphs, x: np.ndarray, step: float) -> float:
    """log|det du/dx| of the exported forward graph at x (1,3,h,w), by central differences.

    All 2D perturbed inputs go through ORT as one batch (the graphs have a dynamic batch axis).
    """
    dims = x.size
    basis = np.eye(dims).reshape((dims,) + x.shape[1:])
    batch = np.concatenate([x + step * basis, x - step * basis]).astype(np.float32)
    u = graphs.encode(batch)[0].reshape(2 * dims, dims).astype(np.float64)
    jac = (u[:dims] - u[dims:]) / (2 * step)       # row i: du / dx_i, i.e. J transposed
    sign, logabsdet = np.linalg.slogdet(jac)
    return float(logabsdet) if sign != 0 else float("-inf")


def exact_log_abs_det(model: FlowModel, x: np.ndarray) -> float:
    """log|det du/dx| of the torch model at x from its float64 autograd Jacobian."""
    m64 = copy.deepcopy(model).double().freeze()
    shape = x.shape
    jac = torch.autograd.functional.jacobian(lambda v: m64(v.view(shape))[0].flatten(),
                                             torch.from_numpy(x).double().flatten())
    return float(torch.linalg.slogdet(jac)[1])


def jacobian_checks(graphs: Graphs, model: FlowModel, tol: Tolerances, precision: str) -> List[Check]:
    """The exported log-det against brute-force Jacobians on a tiny natural input."""
    side = max(8, model.multiple)
    x = natural_image(1, side, side, seed=7)
    dims = x.size
    logdet = float(graphs.encode(x)[1][0])
    fd = fd_log_abs_det(graphs, x, JACOBIAN_STEP[precision])
    exact = exact_log_abs_det(model, x)
    tag = f"{side}x{side}"
    return [Check(f"jacobian {tag} finite differences of graph", abs(fd - logdet) / dims, tol.jacobian_fd_per_dim, "nats/dim"),
            Check(f"jacobian {tag} torch float64 autograd", abs(exact - logdet) / dims, tol.jacobian_exact_per_dim, "nats/dim")]


def checker_checks(folder: Path) -> List[Check]:
    """onnx.checker on every graph (the gradient graphs where present); a failure is value inf (limit 0)."""
    import onnx

    checks = []
    for name in (FORWARD_ONNX, INVERSE_ONNX) + present_gradient_files(folder):
        try:
            onnx.checker.check_model(str(folder / name), full_check=True)
            value = 0.0
        except Exception:  # ValidationError, InferenceError, or a file that is no ONNX at all
            value = float("inf")
        checks.append(Check(f"onnx checker {name}", value, 0.0, "errors"))
    return checks


def round_to_rule(size: Tuple[int, int, int], multiple: int) -> Tuple[int, int, int]:
    batch, h, w = size
    return batch, -(-h // multiple) * multiple, -(-w // multiple) * multiple


def verify_folder(folder: Path, model: FlowModel, precision: str = "float32") -> Report:
    """Run every check on the graphs in ``folder`` against ``model`` (float32 torch, any state).

    Never raises for a failed check: the caller decides (export refuses to write a manifest).
    """
    folder = Path(folder)
    model = copy.deepcopy(model).float().eval().freeze()
    tol = TOLERANCES[precision]
    checks = checker_checks(folder)
    graphs = Graphs(folder)
    report = Report(precision=precision, providers=graphs.providers, checks=checks)
    ref = _Torch(model)
    for size in PARITY_SIZES:
        report.checks += parity_checks(graphs, ref, tol, round_to_rule(size, model.multiple))
    report.checks += jacobian_checks(graphs, model, tol, precision)
    if present_gradient_files(folder):
        from .grad_verify import gradient_checks  # imports this module: loaded only when needed

        report.checks += gradient_checks(folder, model)
    return report


def present_gradient_files(folder: Path) -> Tuple[str, ...]:
    """The gradient graphs in ``folder`` (an export may write either, both or none)."""
    return tuple(name for name in GRADIENT_FILES if (Path(folder) / name).is_file())
