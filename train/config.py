"""Frozen configuration dataclasses, loaded from YAML and embedded in every checkpoint.

A YAML file holds the sections of ``TrainConfig`` (model, data, loss, optim,
run); any key a dataclass does not have is an error, never silently ignored.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import yaml

from flowrt.config import ConfigError, from_dict, to_dict  # noqa: F401  (re-exported)
from flowrt.prior.architecture import ModelConfig  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class DataConfig:
    train_dir: str = "../shared/data/train"
    val_dir: Optional[str] = "../shared/data/val"
    patch: int = 64
    batch: int = 16
    val_crops_per_image: int = 4


@dataclass(frozen=True)
class LossConfig:
    """L = L_nll + b_ln L_ln + b_ae L_ae + b_in L_in; a weight of 0 switches its term off.

    Noise scales: ``xi_std`` in latent units (latent ~ N(0, I)), ``eta_std`` on
    the [0, 1] image scale. The three regularisers use the first
    ``aux_fraction`` of each batch, which keeps their extra passes cheap.
    """
    b_ln: float = 10.0
    b_ae: float = 0.0
    b_in: float = 0.1
    xi_std: float = 0.1
    eta_std: float = 0.04
    aux_fraction: float = 0.25


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    warmup: int = 200
    min_lr_ratio: float = 0.05   # cosine decay ends at lr * min_lr_ratio
    clip_norm: float = 50.0
    steps: int = 20000


@dataclass(frozen=True)
class RunConfig:
    out: str = "runs/default"
    device: str = "auto"        # auto | cpu | cuda
    seed: int = 0
    threads: int = 0            # torch intra-op threads on CPU; 0 = torch's default
    log_every: int = 20
    val_every: int = 250
    ckpt_every: int = 250


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def validate(self) -> "TrainConfig":
        self.model.validate()
        if self.data.patch % (2 ** self.model.levels):
            raise ConfigError(f"data.patch ({self.data.patch}) must be divisible by 2^levels = {2 ** self.model.levels}")
        if not self.data.train_dir:   # None would crash, "" would scan the working folder
            raise ConfigError("no training data: pass --data DIR or set data.train_dir")
        if self.data.batch < 1 or self.optim.steps < 1:
            raise ConfigError("data.batch and optim.steps must be >= 1")
        if not 0 < self.loss.aux_fraction <= 1:
            raise ConfigError("loss.aux_fraction must be in (0, 1]")
        if self.run.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"run.device must be auto, cpu or cuda, not {self.run.device!r}")
        return self


def load_yaml(path: Optional[str]) -> TrainConfig:
    """TrainConfig from a YAML file (None: the defaults)."""
    if path is None:
        return TrainConfig()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {path} must hold a mapping of sections")
    return from_dict(TrainConfig, data)


def override(cfg: TrainConfig, **dotted: Any) -> TrainConfig:
    """Replace fields given as ``section__field=value`` (None values are skipped)."""
    sections = {}
    for key, value in dotted.items():
        if value is None:
            continue
        section, name = key.split("__", 1)
        sections.setdefault(section, {})[name] = value
    for section, values in sections.items():
        cfg = dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **values)})
    return cfg
