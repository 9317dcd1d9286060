"""The one MAP loop (flowrt.solve.loop) on toy problems: it minimises, averages the tail, and its
NaN guard retries with half the step and gives up after cfg.max_retries."""
from dataclasses import replace

import numpy as np

from flowrt.solve.config import SolverConfig
from flowrt.solve.loop import optimise
from flowrt.solve.numpy_solver import Adam


class Quadratic:
    """E = ||x - target||^2 / 2 over an image in [0, 1]; NaN once one step moved x by more than
    ``nan_above`` (a stand-in for a prior that diverges at too large a step)."""

    def __init__(self, target, nan_above=np.inf):
        self.target, self.nan_above, self.data_weight = target, nan_above, 1.0
        self.attempts, self.previous, self.first_moves = 0, None, []

    def fresh(self, start):
        self.attempts, self.previous = self.attempts + 1, None
        return start.astype(np.float32, copy=True)

    def energy_and_grad(self, x):
        diff = x - self.target
        energy = 0.5 * float(np.sum(diff * diff))
        if self.previous is not None:
            move = float(np.abs(x - self.previous).max())
            if len(self.first_moves) < self.attempts:
                self.first_moves.append(move)
            if move > self.nan_above:
                energy = float("nan")
        self.previous = x.copy()
        return energy, diff.astype(np.float32)

    def rebalance(self, x):
        pass

    def project(self, x):
        np.clip(x, 0.0, 1.0, out=x)

    def iterate(self, x, it):
        return x.copy()


def test_the_loop_reaches_the_minimum_inside_the_box_and_averages_its_tail():
    target = np.array([[0.2, 0.7], [1.4, -0.3]], np.float32)   # two entries outside [0, 1]
    problem = Quadratic(target)
    cfg = replace(SolverConfig(), iters=300)
    x, history = optimise(problem, Adam, np.full_like(target, 0.5), cfg, 0.05, None)
    np.testing.assert_allclose(x, np.clip(target, 0, 1), atol=2e-3)
    assert len(history) == 300 and history[-1] < history[0]


def test_the_nan_guard_halves_the_step_until_an_attempt_succeeds_then_gives_up():
    target = np.full((2, 2), 0.3, np.float32)
    cfg = replace(SolverConfig(), iters=5, max_retries=3, warmup=0)
    problem = Quadratic(target, nan_above=0.03)
    done = optimise(problem, Adam, np.full_like(target, 0.5), cfg, 0.1, None)
    assert done is not None and problem.attempts == 3            # steps 0.1 and 0.05 diverged, 0.025 did not
    np.testing.assert_allclose(problem.first_moves, [0.1, 0.05, 0.025], rtol=1e-3)
    hopeless = Quadratic(target, nan_above=1e-6)
    assert optimise(hopeless, Adam, np.full_like(target, 0.5), cfg, 0.1, None) is None
    assert hopeless.attempts == cfg.max_retries + 1
