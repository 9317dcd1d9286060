"""Frozen configuration dataclasses, loaded from YAML and embedded in every checkpoint.

A YAML file holds the sections of ``TrainConfig`` (model, data, loss, optim,
run); any key a dataclass does not have is an error, never silently ignored.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Type, TypeVar

import yaml

from flowrt.errors import FlowrtError

T = TypeVar("T")


class ConfigError(FlowrtError, ValueError):
    """A configuration the user wrote is invalid (unknown key, wrong type, bad value)."""


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


def from_dict(cls: Type[T], data: Optional[Mapping[str, Any]], where: str = "") -> T:
    """Build dataclass ``cls`` from a nested mapping; unknown keys raise ConfigError."""
    data = dict(data or {})
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown config key '{where}{unknown[0]}' (known: {', '.join(known)})")
    kwargs = {}
    for name, value in data.items():
        default = getattr(cls(), name)
        if is_dataclass(default):
            if not isinstance(value, Mapping):
                raise ConfigError(f"config section '{where}{name}' must be a mapping")
            kwargs[name] = from_dict(type(default), value, f"{where}{name}.")
        else:
            kwargs[name] = _coerce(value, default, f"{where}{name}")
    return cls(**kwargs)


def _coerce(value: Any, default: Any, key: str) -> Any:
    if default is None or value is None or isinstance(default, str):
        return value if value is None or default is None else str(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be true or false")
        return value
    try:
        return type(default)(value)
    except (TypeError, ValueError):
        kind = {int: "an integer", float: "a number"}.get(type(default), type(default).__name__)
        raise ConfigError(f"config key {key!r} must be {kind}, got {value!r}") from None


def to_dict(cfg: Any) -> Dict[str, Any]:
    return dataclasses.asdict(cfg)


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
