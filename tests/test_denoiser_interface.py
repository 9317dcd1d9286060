"""The Denoiser protocol, its registry, the restore option that picks one, and that the starts
call the denoiser they are given (a fake one records its calls)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from flowrt.denoise import DENOISERS, Denoiser, GroupedDenoiser, denoise_rgb, denoiser_choices, get_denoiser, \
    resolve_denoiser
from flowrt.errors import InputError
from flowrt.numeric.chain import build_forward_model
from flowrt.pipeline.options import RestoreOptions
from flowrt.solve import splitting
from flowrt.solve.start import denoised_start, split_start


class RecordingDenoiser:
    """Returns its input shrunk towards mid-grey and records every call's arguments."""
    name = "recording"
    estimates_clipped_mean = False

    def __init__(self):
        self.calls = []

    def denoise(self, rgb, sigma, *, greyscale=False, coarse=False, pilot=None, final=False):
        self.calls.append({"shape": rgb.shape, "sigma": sigma, "greyscale": greyscale, "coarse": coarse,
                           "pilot": None if pilot is None else pilot.shape, "final": final})
        return (0.5 + 0.5 * (np.asarray(rgb, np.float32) - 0.5)).astype(np.float32)


def _noisy(h: int = 16, w: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(0.5 + 0.1 * rng.standard_normal((h, w, 3)), 0, 1).astype(np.float32)


def test_registry_names_and_auto():
    assert "grouped" in DENOISERS and denoiser_choices()[0] == "auto"
    assert set(denoiser_choices()) == {"auto", *DENOISERS}
    assert resolve_denoiser("auto") in DENOISERS and resolve_denoiser("grouped") == "grouped"
    denoiser = get_denoiser("auto")
    assert isinstance(denoiser, Denoiser) and isinstance(RecordingDenoiser(), Denoiser)
    assert denoiser.name == "flow" and get_denoiser("grouped").name == "grouped"
    with pytest.raises(InputError, match="--denoiser must be one of auto, flow, grouped"):
        get_denoiser("bm3d")


def test_grouped_denoiser_is_denoise_rgb():
    rgb = _noisy(24, 24)
    out = GroupedDenoiser().denoise(rgb, 10 / 255, coarse=True)
    assert out.dtype == np.float32 and np.array_equal(out, denoise_rgb(rgb, 10 / 255, coarse=True))


def test_option_is_validated_and_planned():
    assert RestoreOptions().denoiser == "auto"
    assert RestoreOptions.from_fields(denoiser="grouped").denoiser == "grouped"
    with pytest.raises(InputError, match="--denoiser must be one of"):
        RestoreOptions.from_fields(denoiser="nope")
    from flowrt.io.arrays import loaded_from_array
    from flowrt.pipeline.plan import plan_restoration
    from flowrt.pipeline.source import from_image
    plan = plan_restoration(from_image(loaded_from_array(_noisy())), RestoreOptions(sigma=10))
    assert plan.denoiser == "flow" and "flow denoiser alone" in plan.describe()   # noise alone: no MAP
    assert plan.cut((0, 8, 0, 8)).denoiser == "flow"
    plan = plan_restoration(from_image(loaded_from_array(_noisy())), RestoreOptions(sigma=10, denoiser="grouped"))
    assert "grouped denoiser alone, clipped noise mapped back (no flow-MAP iterations)" in plan.describe()
    plan = plan_restoration(from_image(loaded_from_array(_noisy())), RestoreOptions(sigma=10, denoiser="grouped",
                                                                                    jpeg=20))
    assert "grouped denoiser then 20 flow-MAP iterations" in plan.describe()      # a JPEG's decode: no map back


def test_auto_names_the_flow_for_every_start_and_a_name_given_is_kept():
    """A JPEG's denoised start, the splitting start and noise alone all get the flow under 'auto'
    (measured on val-photos and val: benchmarks/results/jpeg_start/); 'grouped' still asks for the
    classical denoiser."""
    assert resolve_denoiser("auto") == "flow" and resolve_denoiser("grouped") == "grouped"
    from flowrt.io.arrays import loaded_from_array
    from flowrt.pipeline.plan import plan_restoration
    from flowrt.pipeline.source import from_image

    def planned(**fields):
        return plan_restoration(from_image(loaded_from_array(_noisy(32, 32))), RestoreOptions.from_fields(**fields))
    jpeg = planned(jpeg=30)
    assert jpeg.denoiser == "flow" and jpeg.start.kind == "denoise" and "flow denoiser then" in jpeg.describe()
    assert planned(jpeg=30, denoiser="grouped").denoiser == "grouped"
    assert planned(jpeg=30, scale=2, sigma=5).denoiser == "flow"    # the splitting start
    assert planned(sigma=10).denoiser == "flow"


def test_cli_refuses_an_unknown_denoiser_in_one_line(tmp_path):
    from PIL import Image
    Image.fromarray((_noisy() * 255).astype(np.uint8)).save(tmp_path / "in.png")
    for command in (["restore", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png")],
                    ["batch", str(tmp_path), "-o", str(tmp_path / "out")]):
        done = subprocess.run([sys.executable, "-m", "flowrt.cli.main", *command, "--denoiser", "nope"],
                              capture_output=True, text=True)
        assert done.returncode != 0
        assert done.stderr.strip().splitlines()[-1] == \
            "Error: --denoiser must be one of auto, flow, grouped, not 'nope'", done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "out").exists()


def test_denoised_start_calls_the_given_denoiser():
    fake = RecordingDenoiser()
    noisy = _noisy()
    start = denoised_start(build_forward_model(noisy, sigma=12.0), 12.0, True, fake)
    assert fake.calls == [{"shape": noisy.shape, "sigma": pytest.approx(12 / 255), "greyscale": True,
                           "coarse": False, "pilot": None, "final": False}]
    assert np.allclose(start[0].transpose(1, 2, 0), 0.5 + 0.5 * (noisy - 0.5), atol=1e-6)


def test_split_start_calls_the_given_denoiser_every_round():
    fake = RecordingDenoiser()
    noisy = _noisy(8, 10)
    out = split_start(build_forward_model(noisy, sigma=6.0, scale=2), 6.0, False, fake)
    assert out.shape == (1, 3, 16, 20)
    first, rounds = fake.calls[0], fake.calls[1:]
    assert first["shape"] == (8, 10, 3) and first["sigma"] == pytest.approx(6 / 255)
    assert len(rounds) == splitting.ROUNDS and all(c["shape"] == (16, 20, 3) for c in rounds)
    full = splitting.FULL_ROUNDS
    assert [c["coarse"] for c in rounds] == [True] * (splitting.ROUNDS - full) + [False] * full
    assert [c["pilot"] for c in rounds[-full:]] == [(16, 20, 3)] * full
    assert [c["final"] for c in fake.calls] == [False] * splitting.ROUNDS + [True]   # the last round alone
    sigmas = [c["sigma"] * 255 for c in rounds]
    assert np.allclose(sigmas, splitting.sigma_schedule(6.0))


def test_restore_runs_the_planned_denoiser(monkeypatch):
    """restore_region asks the registry for the plan's denoiser and hands it to the start."""
    from flowrt.denoise import base
    from flowrt.pipeline.plan import RestorationPlan
    from flowrt.pipeline.region import restore_region
    from flowrt.prior.architecture import ModelConfig
    from flowrt.prior.flow import FlowModel
    from flowrt.solve.config import SolverConfig
    fake = RecordingDenoiser()
    monkeypatch.setitem(base.DENOISERS, "recording", lambda: fake)
    plan = RestorationPlan(10.0, "given", None, "test", 1, None, None, denoiser="recording")
    prior = FlowModel(ModelConfig(levels=2, steps_per_level=1, width=8))
    plan = plan.with_method(SolverConfig(iters=0)).with_engine(prior)
    restore_region(_noisy(16, 16), (0, 16, 0, 16), plan, prior, greyscale=False)
    assert len(fake.calls) == 1 and fake.calls[0]["sigma"] == pytest.approx(10 / 255)


def test_checking_a_denoiser_name_imports_no_numba():
    code = ("import sys; from flowrt.pipeline.options import RestoreOptions; "
            "RestoreOptions(denoiser='grouped').validate(); print('numba' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
