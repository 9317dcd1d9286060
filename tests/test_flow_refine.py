"""The flow denoiser's second stage: shards whose pilots are the first stage's estimates, their fit,
its export behind exactly that first stage, and the runtime running it after the first."""
import json
import shutil

import numpy as np
import pytest

from flowrt.denoise import grouped
from flowrt.denoise.flow import REFINE_REF_STEP, FlowDenoiser
from flowrt.errors import ModelError
from flowrt.export.denoiser_export import add_denoiser
from flowrt.prior.folders import REFINE_ONNX, listed_files, open_model_dir, read_manifest
from flowrt.prior.group_flow import TableConfig, slot_index, wiener_tables
from flowrt.train import group_data, group_fit
from flowrt.train.group_tune import pilot_of

CFG = TableConfig(r_bins=12, sigma_bins=4)


def _first_stage_fit(path, seed: int):
    """A first stage's fit file: the Wiener gain perturbed, a random pilot weight."""
    gen = np.random.default_rng(seed)
    gain, _ = wiener_tables(CFG)
    gain = np.clip(gain.numpy() + 0.1 * gen.standard_normal(gain.shape), 0, 0.99).astype(np.float32)
    meta = {"config": CFG.to_dict(), "ridge": 0.5, "shards": ["a"], "target": "clipped-mean", "pilot_graph": ""}
    np.savez(path, gain=gain, weight=(0.1 * gen.standard_normal(gain.shape)).astype(np.float32),
             meta=np.array(json.dumps(meta)))
    return path


def _photos():
    gen = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    base = 0.5 + 0.3 * np.sin(9 * xx + 4 * yy)[..., None] * np.array([1.0, 0.6, 0.3])
    return [(np.clip(base + 0.05 * gen.standard_normal(base.shape), 0, 1) * 255).astype(np.uint8) for _ in range(2)]


def test_second_stage_is_fitted_exported_and_run_behind_its_own_first_stage(tmp_path, tiny_prior):
    folder, other = tmp_path / "prior", tmp_path / "other"
    shutil.copytree(tiny_prior, folder)
    shutil.copytree(tiny_prior, other)
    add_denoiser(_first_stage_fit(tmp_path / "first.npz", 1), folder)
    add_denoiser(_first_stage_fit(tmp_path / "first2.npz", 2), other)

    # shards whose pilots are the folder's first stage say so, and one fit takes one kind of pilot
    pilot_filter, sha = group_data.first_stage(folder)
    kw = dict(crops=2, crop=48, keep=8, sigma_255=(15.0, 40.0))
    group_data.write_shards(_photos(), tmp_path / "s2", 0, 1, pilot_filter=pilot_filter, pilot_graph=sha, **kw)
    group_data.write_shards(_photos(), tmp_path / "s1", 5, 1, **kw)
    rows = int(slot_index(CFG.group).max()) + 1
    stats = group_fit.add_shards(group_fit.Stats.empty(CFG, rows), tmp_path / "s2", log=lambda s: None)
    assert stats.pilot_graph == sha
    with pytest.raises(SystemExit, match="first-stage graph is the hard-thresholding pass"):
        group_fit.add_shards(stats, tmp_path / "s1", log=lambda s: None)
    group_fit.save_run(stats, 0.5, tmp_path / "run")
    fit = tmp_path / "run" / "group_flow.npz"
    assert group_fit.load_stats(tmp_path / "run" / "stats.npz").pilot_graph == sha

    # the tuning needs that same first stage to make its pilots
    meta = json.loads(str(np.load(fit)["meta"]))
    with pytest.raises(SystemExit, match="needs --pilot-model"):
        pilot_of(meta, None, fit)
    with pytest.raises(SystemExit, match="is not the first stage"):
        pilot_of(meta, str(other), fit)
    assert pilot_of(meta, str(folder), fit) is not None

    # exported only behind its first stage; then listed, hashed and run after it
    with pytest.raises(ModelError, match="second stage"):
        add_denoiser(fit, other)
    section = add_denoiser(fit, folder)
    assert section["pilot_graph"] == sha and section["verification"]["passed"]
    manifest = read_manifest(folder)
    assert REFINE_ONNX in listed_files(manifest)
    open_model_dir(folder, listed_files(manifest))
    den = FlowDenoiser.from_model_dir(folder)
    assert den.refine is not None
    noisy = group_data.noisy_copy(_photos()[0].astype(np.float32) / 255, 25.0, np.random.default_rng(3))
    sigma = 25 / 255
    first = grouped.denoise_rgb(noisy, sigma, group_filter=den.tables.filter_grouping)
    second = grouped.denoise_rgb(noisy, sigma, pilot=first, group_filter=den.refine.filter_grouping,
                                 ref_step=REFINE_REF_STEP)
    out = den.denoise(noisy, sigma)
    assert np.array_equal(out, second) and np.abs(out - first).max() > 1e-3
    # a caller's pilot or a coarse estimate runs no second stage
    assert np.array_equal(den.denoise(noisy, sigma, coarse=True), grouped.denoise_rgb(noisy, sigma, coarse=True))

    # a new first stage drops the second stage fitted behind the old one
    add_denoiser(tmp_path / "first2.npz", folder)
    assert REFINE_ONNX not in read_manifest(folder)["files"] and not (folder / REFINE_ONNX).exists()
    assert FlowDenoiser.from_model_dir(folder).refine is None


def test_a_later_stage_can_take_fewer_reference_patches():
    noisy = group_data.noisy_copy(_photos()[1].astype(np.float32) / 255, 20.0, np.random.default_rng(4))
    planes = grouped._planes(noisy, False)
    pilot = grouped._planes(grouped.denoise_rgb(noisy, 20 / 255), False)
    dense = grouped.group_planes(planes, 20 / 255, pilot)
    sparse = grouped.group_planes(planes, 20 / 255, pilot, ref_step=4)
    assert len(sparse.counts) == len(grouped._reference_grid(64, 64, 4)[0]) < len(dense.counts)
    assert set(sparse.ys[:, 0].tolist()) == {0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56}
