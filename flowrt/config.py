"""Frozen configuration dataclasses from nested mappings (YAML, checkpoints, manifests).

One loader for every config in flowrt: unknown keys are an error, never silently ignored, and
values are coerced to the type of the field's default.
"""
from __future__ import annotations

import dataclasses
from dataclasses import fields, is_dataclass
from typing import Any, Dict, Mapping, Optional, Type, TypeVar

from flowrt.errors import FlowrtError

T = TypeVar("T")


class ConfigError(FlowrtError, ValueError):
    """A configuration the user wrote is invalid (unknown key, wrong type, bad value)."""


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


