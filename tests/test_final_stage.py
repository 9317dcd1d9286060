"""The flow denoiser's final stage: groups of the splitting's last round, their fit, its export into
a folder with a first stage, and the runtime running it in that round alone."""
import shutil

import numpy as np
import pytest

from flowrt.denoise import grouped
from flowrt.denoise.flow import FlowDenoiser, GroupTables
from flowrt.errors import ModelError
from flowrt.export.denoiser_export import add_denoiser
from flowrt.prior.folders import FINAL_ONNX, FINAL_PILOT, listed_files, open_model_dir, read_manifest
from flowrt.prior.group_flow import slot_index
from flowrt.train import group_fit, split_data

from test_flow_refine import CFG, _first_stage_fit, _photos


def test_the_final_round_alone_runs_the_final_stage(tmp_path, tiny_prior):
    folder = tmp_path / "prior"
    shutil.copytree(tiny_prior, folder)
    add_denoiser(_first_stage_fit(tmp_path / "first.npz", 1), folder)
    first = FlowDenoiser.from_model_dir(folder).tables
    den = FlowDenoiser(first, final=GroupTables(first.gain[::-1].copy(), first.weight, first.slots, first.axes, "clean"))
    gen = np.random.default_rng(5)
    rgb = np.clip(_photos()[0].astype(np.float32) / 255 + 0.02 * gen.standard_normal((64, 64, 3)), 0, 1).astype(np.float32)
    pilot = grouped.denoise_rgb(rgb, 6 / 255)
    sigma = 4 / 255
    final = den.denoise(rgb, sigma, pilot=pilot, final=True)
    assert np.array_equal(final, grouped.denoise_rgb(rgb, sigma, pilot=pilot, group_filter=den.final.filter_grouping))
    wiener = den.denoise(rgb, sigma, pilot=pilot)
    assert np.array_equal(wiener, grouped.denoise_rgb(rgb, sigma, pilot=pilot))
    assert np.abs(final - wiener).max() > 1e-3
    # a std outside the final stage's knots (2 to 64 here) gets the Wiener pass
    assert np.array_equal(den.denoise(rgb, 1 / 255, pilot=pilot, final=True), grouped.denoise_rgb(rgb, 1 / 255, pilot=pilot))
    # without a pilot (a start's own denoising) the flag changes nothing
    assert np.array_equal(den.denoise(rgb, sigma, final=True), den.denoise(rgb, sigma))


def test_last_round_groups_are_fitted_and_exported_as_the_final_stage(tmp_path, tiny_prior):
    folder, bare = tmp_path / "prior", tmp_path / "bare"
    shutil.copytree(tiny_prior, folder)
    shutil.copytree(tiny_prior, bare)
    add_denoiser(_first_stage_fit(tmp_path / "first.npz", 1), folder)
    den = FlowDenoiser.from_model_dir(folder)

    photos = _photos()
    split_data.write_shards(photos, tmp_path / "shards", 0, 1, crops=2, crop=48, keep=6,
                            tasks=["sr2", "deblur"], denoiser=den)
    shard = np.load(tmp_path / "shards" / "shard-00000.npz")
    assert str(shard["pilot_graph"]) == FINAL_PILOT and not shard["clipped"].any()
    # the last round's std: 1.5 x the noise-free floor for x2, 1.5 x the blur task's noise 2
    assert sorted(np.unique(np.round(shard["sigma"] * 255, 3))) == [1.5, 3.0]
    assert len(shard["count"]) == 2 * 3 * 6 and np.isfinite(shard["y"]).all()

    rows = int(slot_index(CFG.group).max()) + 1
    stats = group_fit.add_shards(group_fit.Stats.empty(CFG, rows), tmp_path / "shards", log=lambda s: None)
    group_fit.save_run(stats, 0.5, tmp_path / "run")
    fit = tmp_path / "run" / "group_flow.npz"
    with pytest.raises(ModelError, match="has no flow denoiser"):
        add_denoiser(fit, bare)
    section = add_denoiser(fit, folder)
    assert section["verification"]["passed"] and section["target"] == "clean"
    manifest = read_manifest(folder)
    assert FINAL_ONNX in listed_files(manifest) and "denoiser_final" in manifest
    open_model_dir(folder, listed_files(manifest))
    assert FlowDenoiser.from_model_dir(folder).final is not None
    # a new first stage keeps it (see denoiser_export's docstring)
    add_denoiser(tmp_path / "first.npz", folder)
    assert FINAL_ONNX in read_manifest(folder)["files"]


def test_the_packaged_final_stage_beats_the_wiener_pass_on_a_photos_upscale():
    """A useless final stage (the Wiener pass, or one returning its input) fails this: x2 upscaling
    of a natural photo's crop (scikit-image's bundled coffee photo), flow against grouped."""
    data = pytest.importorskip("skimage.data")
    import flowrt
    from PIL import Image
    from flowrt.denoise.flow import packaged_flow_denoiser
    assert packaged_flow_denoiser().final is not None
    clean = np.ascontiguousarray(data.coffee()[100:196, 200:296, :3])
    observed = np.asarray(Image.fromarray(clean).resize((48, 48), Image.BICUBIC))
    psnr = {}
    for name in ("flow", "grouped"):
        out = np.asarray(flowrt.restore(observed, scale=2, sigma=0, iters=0, denoiser=name).image, np.float64)
        psnr[name] = 10 * np.log10(255.0 ** 2 / np.mean((out - clean) ** 2))
    assert psnr["flow"] > psnr["grouped"] + 0.15, psnr
