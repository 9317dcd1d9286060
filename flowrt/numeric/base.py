"""The two kinds of pieces a forward model is made of, as the one interface both engines use.

A ``Stage`` is a deterministic linear stage (blur, downsampling, masking) mapping an image batch
(B, 3, H, W) in [0, 1] to its degraded version (B, 3, h, w), with its adjoint. A ``Likelihood`` is
the observation's noise model at the end of the chain: ``nll(z)`` is -log p(y | z) in nats per batch
item (B,) float64, constants dropped. The observation itself (the image, mask, noise level, scale) is
checked once, in ``flowrt.numeric.observation.chain_spec``. Every stage and likelihood lives in
``flowrt.numeric``; the torch engine reaches them through ``flowrt.operators.bridge``.
"""
from __future__ import annotations

from typing import Optional, Protocol, Tuple

import numpy as np


class Stage(Protocol):
    """A linear stage: ``apply`` (B, C, H, W) -> (B, C, h, w) in the input's dtype, and its adjoint."""

    def apply(self, x: np.ndarray) -> np.ndarray: ...

    def vjp(self, g: np.ndarray) -> np.ndarray:
        """The adjoint of ``apply`` (its transpose: it is linear): (B, C, h, w) -> (B, C, H, W)."""

    def out_size(self, h: int, w: int) -> Tuple[int, int]: ...


class Likelihood(Protocol):
    """The data term of z (B, 3, h, w), the chain's output, against the observation."""

    noise_given: bool  # a noise level was given, so the misfit has an expectation

    def nll(self, z: np.ndarray) -> np.ndarray:
        """-log p(y | z), (B,) float64 nats, constants dropped."""

    def nll_and_grad(self, z: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(nll (B,) float64, d nll / dz like z in z's dtype)."""

    def curvature_weights(self) -> Optional[np.ndarray]:
        """(h, w) float64 >= 1, the data term's curvature per pixel relative to an inner pixel's, or
        None where it is the same everywhere (a first-order solver scales its steps by it)."""

    def expected_nll(self, z: np.ndarray) -> Optional[np.ndarray]:
        """E[nll(z)] over observations drawn from this model at z, (B,) float64; None when the model
        was given no noise level (its misfit then says nothing about over-smoothing)."""
