"""The MAP loop, once, for both engines: Adam on the schedule of ``flowrt.solve.schedule``.

Each engine brings its objective as a ``Problem`` (the torch engine's in ``flowrt.solve.solver``,
image or latent space, its gradient by autograd; the torch-free engine's in
``flowrt.solve.numpy_solver``, image space, its gradient from the forward model's adjoints and the
ONNX gradient graph) and its ``Optimiser`` (torch.optim.Adam, or the numpy Adam with the same
rule); this module owns every rule they share: the warm-up + cosine step, Morozov's rebalance every
REBALANCE_EVERY iterations, the projection after each step, the mean of the last ``average_tail``
iterates as the answer, the NaN guard and the retries with half the step. Torch-free: ``param`` is
whatever array type the problem works in (a torch tensor or a numpy array), touched only through
the problem's and the optimiser's methods and ``+`` and ``/``.
"""
from __future__ import annotations

import math
from typing import Any, Callable, List, Optional, Protocol, Tuple

from flowrt import interrupts
from flowrt.solve.config import SolverConfig
from flowrt.solve.schedule import lr_schedule, rebalances_at, tail_start, with_halving_retries

Progress = Optional[Callable[[int, int], None]]


class Problem(Protocol):
    """One MAP objective over a parameter array (the image, or the flow's latent)."""
    data_weight: float   # the discrepancy principle's weight of the data term (1 at the start)

    def fresh(self, start: Any) -> Any:
        """A new parameter array holding ``start`` (the loop updates it in place)."""

    def energy_and_grad(self, param: Any) -> Tuple[float, Any]:
        """(E summed over the batch, dE/dparam); E may be non-finite (the loop raises)."""

    def rebalance(self, param: Any) -> None:
        """Adjust ``data_weight`` to the current misfit (a no-op without a noise level)."""

    def project(self, param: Any) -> None:
        """Bring ``param`` back to its feasible set in place (image space: [0, 1])."""

    def iterate(self, param: Any, it: int) -> Any:
        """The image ``param`` stands for, (B, 3, H', W') in [0, 1], as a new array; raises
        FloatingPointError when it is not finite."""


class Optimiser(Protocol):
    def step(self, param: Any, grad: Any, lr: float) -> None:
        """One update of ``param`` in place, with step size ``lr``."""


def run_attempt(problem: Problem, optimiser: Optimiser, param: Any, cfg: SolverConfig, lr: float,
                progress: Progress) -> Tuple[Any, List[float]]:
    """One optimisation attempt of ``cfg.iters`` >= 1 steps from ``param``: (the mean of the tail
    iterates, the energy of every iteration), or FloatingPointError."""
    problem.data_weight = 1.0  # a retry starts from scratch
    tail_from = tail_start(cfg)
    total, count, history = None, 0, []
    for it in range(cfg.iters):
        interrupts.check()
        if rebalances_at(it, cfg):
            problem.rebalance(param)
        energy, grad = problem.energy_and_grad(param)
        if not math.isfinite(energy):
            raise FloatingPointError(f"objective became {energy} at iteration {it}")
        optimiser.step(param, grad, lr * lr_schedule(it, cfg))
        problem.project(param)
        if it >= tail_from:
            x_it = problem.iterate(param, it)
            total = x_it if total is None else total + x_it
            count += 1
        history.append(energy)
        if progress is not None:
            progress(it + 1, cfg.iters)
    return total / count, history


def optimise(problem: Problem, make_optimiser: Callable[[Any], Optimiser], start: Any, cfg: SolverConfig,
             lr: float, progress: Progress) -> Optional[Tuple[Any, List[float]]]:
    """``run_attempt`` from ``start`` with the NaN guard: each failed attempt is retried from the
    start with half the step (``cfg.max_retries`` times); None when every attempt failed."""
    def attempt(step: float):
        param = problem.fresh(start)
        return run_attempt(problem, make_optimiser(param), param, cfg, step, progress)
    return with_halving_retries(attempt, lr, cfg.max_retries)
