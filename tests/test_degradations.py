"""The registry of degradations (flowrt.numeric.degradations): one property test over every entry
with its example value, and a toy degradation added the way the registry says (its module, one
entry, an options field, this test) reaching the plan, the summary and the chain."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pytest

from flowrt.errors import InputError
from flowrt.numeric import degradations
from flowrt.numeric.chain import build_forward_model
from flowrt.pipeline.options import RestoreOptions
from flowrt.pipeline.plan import plan_restoration
from flowrt.pipeline.source import from_image


def _photo(h=24, w=32, seed=0):
    from flowrt.io.arrays import loaded_from_array
    rng = np.random.default_rng(seed)
    rgb = np.clip(0.5 + 0.2 * rng.standard_normal((h, w, 3)), 0, 1).astype(np.float32)
    return loaded_from_array((rgb * 255).round().astype(np.uint8))


@pytest.mark.parametrize("entry", list(degradations.REGISTRY.values()), ids=list(degradations.REGISTRY))
def test_every_registered_degradation_is_a_shape_keeping_linear_stage_with_its_adjoint(entry):
    fields = {f.name for f in dataclasses.fields(RestoreOptions)}
    assert entry.option in fields                      # its option, in the one options class
    from cli.restore_options import _OPTIONS
    import click

    @click.command()
    def probe(**_):
        pass
    for option in _OPTIONS:
        probe = option(probe)
    assert entry.flag in {o for p in probe.params for o in p.opts}   # the CLI made its flag
    stage = entry.stage(entry.parse(entry.example))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 3, 20, 22)).astype(np.float32)
    g = rng.standard_normal((1, 3, 20, 22)).astype(np.float32)
    y = stage.apply(x)
    assert y.shape == x.shape and stage.out_size(20, 22) == (20, 22)
    assert float(np.sum(y * g)) == pytest.approx(float(np.sum(x * stage.vjp(g))), rel=1e-4)
    plan = plan_restoration(from_image(_photo()), RestoreOptions(sigma=5, **{entry.option: entry.example}))
    assert [name for name, _ in plan.degradations] == [entry.option]
    assert entry.describe(plan.degradations[0][1]) in plan.describe_model()
    assert plan.inverts == entry.inverts and (plan.start.kind == "split") == entry.inverts


# --- a toy degradation, as a new one would be added: this module is its implementation ----------

class Gain:
    """x -> gain * x: linear, shape-keeping, self-adjoint."""

    def __init__(self, gain: float):
        self.gain = gain

    def apply(self, x):
        return (self.gain * x).astype(x.dtype)

    def vjp(self, g):
        return (self.gain * g).astype(g.dtype)

    def out_size(self, h, w):
        return h, w


def parse_option(value):
    gain = float(value)
    if not 0 < gain <= 4:
        raise InputError(f"--gain must be in (0, 4], not {value!r}")
    return gain


def stage_for(gain):
    return Gain(gain)


def describe(gain):
    return f"undo a gain of {gain:g}"


@dataclass(frozen=True)
class ToyOptions(RestoreOptions):
    gain: Optional[str] = None   # the new degradation's options field


def test_a_toy_degradation_needs_only_its_module_its_entry_and_its_field(monkeypatch):
    toy = degradations.Degradation("gain", "G", "A known gain.", __name__, example="0.5", inverts=False)
    monkeypatch.setitem(degradations.REGISTRY, "gain", toy)
    plan = plan_restoration(from_image(_photo()), ToyOptions(sigma=5, gain="0.5"))
    assert plan.degradations == (("gain", 0.5),) and "undo a gain of 0.5" in plan.describe_model()
    assert plan.nothing_to_do is None and not plan.inverts
    y = np.full((8, 8, 3), 0.25, np.float32)
    fm = build_forward_model(y, sigma=5.0, degradations=plan.degradations)
    x = np.full((1, 3, 8, 8), 0.5, np.float32)
    assert fm.nll(x)[0] < fm.nll(x * 0.5)[0]           # 0.5 x 0.5 explains y = 0.25 exactly
    with pytest.raises(InputError, match="--gain must be"):
        plan_restoration(from_image(_photo()), ToyOptions(sigma=5, gain="9"))
