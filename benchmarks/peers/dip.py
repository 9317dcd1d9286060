"""Deep Image Prior (Ulyanov, Vedaldi, Lempitsky, CVPR 2018) as a benchmark peer.

An untrained encoder-decoder with skip connections maps a fixed noise tensor to an image; its
weights are fitted by Adam to the observation through the task's forward operator, and the
network's bias toward natural structure (fitted before noise) is the only prior. With a fixed
iteration count the stopping point is the regulariser, as in the paper.

Architecture ("skip" network of the paper's supplement): ``depth`` levels, each with a down
block (3x3 stride-2 conv, 3x3 conv), a 1x1 skip branch, and an up block (BN, 3x3 conv, 1x1 conv)
after bilinear upsampling; every conv is followed by BatchNorm and LeakyReLU(0.2) and uses
reflection padding; a final 1x1 conv and a sigmoid give RGB in [0, 1].
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from benchmarks.protocol import Degraded

from .resize import pillow_bicubic_resize_torch


@dataclass(frozen=True)
class DipSettings:
    """Fitting settings. The paper uses width 128, depth 5, about 1800-3000 iterations on a GPU;
    on this CPU that takes hours per 256x256 crop, so the defaults trade width for time: width
    32 reaches its plateau in about 400 steps on 128x128 crops (benchmarks/README.md)."""
    iterations: int = 400
    width: int = 32            # channels in the down and up paths (paper: 128)
    skip_channels: int = 4     # channels of each skip branch (paper: 4)
    depth: int = 5             # number of down/up levels (paper: 5)
    input_channels: int = 32   # channels of the fixed noise input (paper: 32)
    learning_rate: float = 0.01
    input_noise_scale: float = 0.1   # z ~ U(0, 0.1), as in the paper's code
    input_jitter: float = 1.0 / 30   # fresh N(0, jitter^2) added to z at every step
    device: str = "cpu"


def _conv_bn_act(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, padding_mode="reflect"),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2, inplace=True),
    )


class _Level(nn.Module):
    """One resolution level: skip branch and down block in, up block out; ``deeper`` (the next
    level, or None at the bottom) runs at half resolution between down and up."""

    def __init__(self, c_in: int, width: int, skip: int, deeper: nn.Module | None):
        super().__init__()
        self.skip = _conv_bn_act(c_in, skip, 1) if skip else None
        self.down = nn.Sequential(_conv_bn_act(c_in, width, 3, stride=2), _conv_bn_act(width, width, 3))
        self.deeper = deeper
        merged = skip + width
        self.up = nn.Sequential(nn.BatchNorm2d(merged), _conv_bn_act(merged, width, 3),
                                _conv_bn_act(width, width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.down(x)
        if self.deeper is not None:
            low = self.deeper(low)
        low = F.interpolate(low, size=x.shape[-2:], mode="bilinear", align_corners=False)
        parts = [self.skip(x), low] if self.skip is not None else [low]
        return self.up(torch.cat(parts, dim=1))


class SkipNet(nn.Module):
    """(B, input_channels, H, W) noise -> (B, 3, H, W) image in (0, 1); any H, W >= 2**depth."""

    def __init__(self, settings: DipSettings, depth: int | None = None):
        super().__init__()
        level = None
        for index in reversed(range(depth or settings.depth)):
            c_in = settings.input_channels if index == 0 else settings.width
            level = _Level(c_in, settings.width, settings.skip_channels, level)
        self.body = level
        self.head = nn.Conv2d(settings.width, 3, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.body(z)))


def usable_depth(depth: int, height: int, width: int) -> int:
    """``depth`` capped so the coarsest level keeps at least 4x4 pixels (BatchNorm and
    reflection padding need more than one); 256x256 keeps the paper's 5 levels."""
    side, usable = min(height, width), 0
    while usable < depth and side // 2 ** (usable + 1) >= 4:
        usable += 1
    return max(usable, 1)


def _to_tensor(image: np.ndarray, device: str) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1]."""
    array = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / 255.0
    return torch.from_numpy(array)[None].to(device)


def fit_dip(observed: np.ndarray, out_shape: tuple[int, int], settings: DipSettings,
            seed: int, downsample: bool = False,
            observer: Callable[[int, torch.Tensor], None] | None = None) -> np.ndarray:
    """Fit a fresh SkipNet to ``observed`` ((h, w, 3) uint8) and return its output.

    out_shape: (H, W) of the restored image. With ``downsample`` the data term compares the
    output, shrunk to (h, w) by Pillow's bicubic operator, with the observation (the multi
    task); otherwise H, W must equal h, w and the data term is a plain pixel L2.
    observer(step, output) sees each step's (1, 3, H, W) output (for tracing a run).
    Returns (H, W, 3) float32 in [0, 1], the last iterate.
    """
    torch.manual_seed(seed)
    target = _to_tensor(observed, settings.device)
    height, width = out_shape
    if not downsample and target.shape[-2:] != (height, width):
        raise ValueError(f"observation {tuple(target.shape[-2:])} does not match {out_shape}")
    net = SkipNet(settings, usable_depth(settings.depth, height, width)).to(settings.device)
    z = settings.input_noise_scale * torch.rand(1, settings.input_channels, height, width,
                                                device=settings.device)
    optimiser = torch.optim.Adam(net.parameters(), lr=settings.learning_rate)
    for step in range(settings.iterations):
        optimiser.zero_grad(set_to_none=True)
        output = net(z + settings.input_jitter * torch.randn_like(z))
        if observer is not None:
            observer(step, output.detach())
        if downsample:
            output = pillow_bicubic_resize_torch(output, target.shape[-2], target.shape[-1])
        loss = F.mse_loss(output, target)
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        # The final image is read without input jitter; BatchNorm stays in training mode as in
        # the paper's code (batch of one, statistics of this very image).
        result = net(z)
    return result[0].permute(1, 2, 0).cpu().numpy()


def time_per_iteration(settings: DipSettings, size: int = 256, steps: int = 3) -> float:
    """Seconds per Adam step at size x size (for sizing a run); warms up with one step."""
    observed = np.zeros((size, size, 3), dtype=np.uint8)
    fit_dip(observed, (size, size), replace(settings, iterations=1), 0)
    start = time.perf_counter()
    fit_dip(observed, (size, size), replace(settings, iterations=steps), 0)
    return (time.perf_counter() - start) / steps


class DipMethod:
    """Deep Image Prior on one degraded image: data term in the observed domain (pixel L2 to
    the noisy PNG or the decoded JPEG; for multi, after Pillow-bicubic downsampling)."""
    name = "dip"

    def __init__(self, settings: DipSettings):
        self.settings = settings

    def applies_to(self, task: str) -> bool:
        return True

    def missing(self) -> str | None:
        if self.settings.device.startswith("cuda") and not torch.cuda.is_available():
            return "--dip-device cuda was asked for but torch sees no CUDA device"
        return None

    def restore(self, item: Degraded, workdir: Path) -> np.ndarray:
        # torch seeds must fit in 64 bits unsigned; the protocol's seed is 63-bit already.
        return fit_dip(item.observed, item.clean.shape[:2], self.settings, item.seed,
                       downsample=item.task.scale > 1)

    def describe(self) -> dict:
        return {"what": "Deep Image Prior, skip encoder-decoder, Adam, fixed iterations, "
                        "last iterate", **asdict(self.settings)}
