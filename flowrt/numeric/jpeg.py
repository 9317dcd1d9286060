"""The JPEG data term: the observation is the file's quantised DCT coefficients; the one
implementation (the torch engine reaches it through ``flowrt.operators.bridge``).

For a candidate z (B, 3, H, W) in [0, 1], each component's unquantised coefficients are
c = D P_c(Y_c z) D^T per 8x8 block (Y_c: a YCbCr row times 255, luma shifted by -128; P_c: MCU edge
padding, chroma pooling and cropping, as ``JpegLayout.planes``), and an observed index k says that c
plus the noise (std s_c) lay in [q (k - 1/2), q (k + 1/2)]:

    nll(z) = -sum over observed blocks of log P(k | c)           (B,) float64 nats
    d nll / dz = Y_c^T P_c^T (D^T (-d log P / dc) D)             like z

The adjoint of P_c spreads a pooled sample's gradient evenly over its footprint and adds the MCU
padding's gradient onto the edge rows and columns it copied. Coefficients are float64.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from flowrt.io.jpeg_coefficients import JpegInfo
from flowrt.numeric.dct import BLOCK, dct_matrix
from flowrt.numeric.jpeg_layout import LUMA_LEVEL_SHIFT, YCBCR, JpegLayout, standard_normal_draws
from flowrt.numeric.normal import log_interval_prob, log_interval_prob_and_grad
from flowrt.numeric.padding import edge_pad_vjp

_DCT = dct_matrix()


def _to_blocks(plane: np.ndarray) -> np.ndarray:
    """(B, 8 by, 8 bx) -> (B, by, bx, 8, 8)."""
    b, h, w = plane.shape
    return plane.reshape(b, h // BLOCK, BLOCK, w // BLOCK, BLOCK).transpose(0, 1, 3, 2, 4)


def _from_blocks(blocks: np.ndarray) -> np.ndarray:
    """(B, by, bx, 8, 8) -> (B, 8 by, 8 bx), the inverse of ``_to_blocks``."""
    b, by, bx = blocks.shape[:3]
    return blocks.transpose(0, 1, 3, 2, 4).reshape(b, by * BLOCK, bx * BLOCK)


class JpegLikelihood:
    """nll(z) for z (B, 3, H, W) in [0, 1] against a JPEG file's coefficients, (B,) float64 nats.

    sigma_255: the Gaussian noise std added before compression (None: the floor only).
    observed: optional bool (H, W), True = pixel observed; blocks touching a hole are left out.
    """

    def __init__(self, info: JpegInfo, sigma_255: Optional[float] = None, observed: Optional[np.ndarray] = None):
        self.layout = JpegLayout(info, sigma_255, observed)
        self.noise_given = self.layout.noise_given
        self._k = [k.astype(np.float64) for k in self.layout.k]
        self._q = [q.astype(np.float64) for q in self.layout.q]
        self._valid = [v.astype(np.float64)[None, :, :, None, None] for v in self.layout.valid]

    def coefficients(self, z: np.ndarray) -> List[np.ndarray]:
        """Unquantised DCT coefficients of z per component, float64 (B, by, bx, 8, 8), 0-255 scale."""
        lay = self.layout
        if tuple(z.shape[-2:]) != lay.hw:
            raise ValueError(f"JPEG term built for {lay.hw}, got {tuple(z.shape[-2:])}")
        ycc = np.einsum("ij,bjhw->bihw", YCBCR, np.asarray(z, np.float64) * 255.0)
        ycc[:, 0] -= LUMA_LEVEL_SHIFT
        return [_DCT @ _to_blocks(lay.planes(ycc[:, c], c)) @ _DCT.T for c in range(lay.components)]

    def _coefficients_vjp(self, grads: List[np.ndarray], dtype) -> np.ndarray:
        """The adjoint of ``coefficients``: per-component gradients (B, by, bx, 8, 8) -> (B, 3, H, W)."""
        lay = self.layout
        (h, w), (ph, pw) = lay.hw, lay.padded_size()
        g_ycc = np.zeros((grads[0].shape[0], 3, h, w))
        for c, g in enumerate(grads):
            plane = _from_blocks(_DCT.T @ g @ _DCT)
            fy, fx = lay.pool[c]
            pooled = np.zeros((plane.shape[0], ph // fy, pw // fx))
            pooled[:, :plane.shape[1], :plane.shape[2]] = plane
            full = np.repeat(np.repeat(pooled, fy, axis=1), fx, axis=2) / (fy * fx)
            g_ycc[:, c] = edge_pad_vjp(full, (0, full.shape[-1] - w, 0, full.shape[-2] - h))
        return (255.0 * np.einsum("ij,bihw->bjhw", YCBCR, g_ycc)).astype(dtype)

    def curvature_weights(self) -> np.ndarray:
        """(h, w) float64 >= 1: the relative curvature of the data term per pixel (``JpegLayout.padding_copies``)."""
        return self.layout.padding_copies()

    def nll(self, z: np.ndarray) -> np.ndarray:
        """-log p(k | z), (B,) float64 nats."""
        return self._interval_nll(self.coefficients(z), self._k)

    def nll_and_grad(self, z: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(nll (B,) float64, d nll / dz like z in z's dtype)."""
        coefs = self.coefficients(z)
        total, grads = np.zeros(coefs[0].shape[0]), []
        for c, coef in enumerate(coefs):
            q, std = self._q[c], self.layout.std[c]
            logp, dlogp = log_interval_prob_and_grad(q * self._k[c], 0.5 * q, coef, std)
            total -= (logp * self._valid[c]).reshape(len(total), -1).sum(1)
            grads.append(-dlogp * self._valid[c])
        return total, self._coefficients_vjp(grads, np.asarray(z).dtype)

    def _interval_nll(self, coefs: List[np.ndarray], ks: List[np.ndarray]) -> np.ndarray:
        total = np.zeros(coefs[0].shape[0])
        for c, (coef, k) in enumerate(zip(coefs, ks)):
            logp = log_interval_prob(self._q[c] * k, 0.5 * self._q[c], coef, self.layout.std[c])
            total -= (logp * self._valid[c]).reshape(len(total), -1).sum(1)
        return total

    def expected_nll(self, z: np.ndarray, draws: int = 2) -> Optional[np.ndarray]:
        """Monte Carlo over the model's own story, with fixed draws (the same answer every call): coefficients of
        z plus noise of each component's std, quantised by the file's tables, scored as ``nll``.
        (B,) float64; None when no noise level was given."""
        if not self.noise_given:
            return None
        coefs = self.coefficients(z)
        total = np.zeros(coefs[0].shape[0])
        for noise in standard_normal_draws([coef.shape for coef in coefs], draws):
            ks = [np.round((coef + self.layout.std[c] * n) / self._q[c])
                  for c, (coef, n) in enumerate(zip(coefs, noise))]
            total += self._interval_nll(coefs, ks)
        return total / draws
