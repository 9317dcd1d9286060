"""The flow prior's architecture: what a checkpoint, a manifest and an export all agree on."""
from __future__ import annotations

from dataclasses import dataclass

from flowrt.config import ConfigError


@dataclass(frozen=True)
class ModelConfig:
    """Architecture: ``levels`` scales, ``steps_per_level`` Glow steps each, coupling ``width``."""
    levels: int = 3
    steps_per_level: int = 4
    width: int = 64
    scale_bound: float = 2.0   # |log-scale| of couplings and split priors stays below this
    channels: int = 3
    seed: int = 0              # fixes the 1x1-conv initial rotations

    def validate(self) -> None:
        if self.levels < 1 or self.steps_per_level < 1 or self.width < 1:
            raise ConfigError("model.levels, model.steps_per_level and model.width must be >= 1")
        if self.scale_bound <= 0:
            raise ConfigError("model.scale_bound must be > 0")
