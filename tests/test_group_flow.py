"""The group flow (flowrt.prior.group_flow), its fit (flowrt.train.group_fit) and its export."""
import math

import numpy as np
import pytest
import torch

from flowrt.denoise import grouped
from flowrt.denoise import flow as flow_runtime
from flowrt.denoise.flow import FlowDenoiser, GroupTables
from flowrt.prior import group_flow as gf
from flowrt.prior.group_flow import GroupFlow, TableConfig, slot_index, wiener_tables
from flowrt.train import group_data, group_fit

SMALL = TableConfig(group=8, r_bins=12, sigma_bins=4)


def _groups(cfg: TableConfig, n: int = 24, seed: int = 0):
    gen = np.random.default_rng(seed)
    counts = 2 ** gen.integers(0, int(math.log2(cfg.group)) + 1, n)
    rows = torch.from_numpy((np.arange(cfg.group)[None, :, None] < counts[:, None, None]).astype(np.float64))
    y = torch.from_numpy(gen.standard_normal((n, cfg.group, 64)) * 0.2) * rows
    p = torch.from_numpy(gen.standard_normal((n, cfg.group, 64)) * 0.2) * rows
    return (y, p, torch.from_numpy(counts), torch.from_numpy(gen.integers(0, 3, n)),
            torch.from_numpy(gen.uniform(3, 60, n) / 255.0))


def _random_flow(cfg: TableConfig, seed: int = 0) -> GroupFlow:
    gen = torch.Generator().manual_seed(seed)
    gain, _ = wiener_tables(cfg)
    gain = torch.clamp(gain + 0.2 * torch.randn(gain.shape, generator=gen), 0, 0.99)
    return GroupFlow(cfg, gain, 0.3 * torch.randn(gain.shape, generator=gen)).double()


def test_bijection_contract_round_trip_and_opposite_logdets():
    model = _random_flow(SMALL)
    y, p, counts, channel, sigma = _groups(SMALL)
    ctx = model.context(p, counts, channel, sigma)
    z, fwd = model.bijection(y, ctx)
    back, inv = model.bijection.inverse(z, ctx)
    assert torch.allclose(back, y, atol=1e-12)
    assert torch.allclose(fwd, -inv, atol=1e-12)
    assert torch.equal(z[~ctx.valid], y[~ctx.valid])     # padding rows pass through


def test_tweedie_is_the_exact_score_step():
    """x_hat = y + sigma^2 d/dy log p(y | p, sigma), by autograd, and -log p matches nll."""
    model = _random_flow(SMALL, seed=1)
    y, p, counts, channel, sigma = _groups(SMALL, seed=1)
    y = y.clone().requires_grad_(True)
    log_p = model.log_prob(y, p, counts, channel, sigma)
    score, = torch.autograd.grad(log_p.sum(), y)
    x_hat, weight, nll = model(y, p, counts, channel, sigma)
    valid = model.context(p, counts, channel, sigma).valid
    expected = (y + sigma[:, None, None] ** 2 * score) * valid
    assert torch.allclose(x_hat, expected.detach(), atol=1e-10)
    assert torch.allclose(nll, -log_p.detach(), rtol=1e-10)
    assert (weight > 0).all()


def test_the_density_is_normalised():
    """One coefficient's conditional density integrates to 1 (a proper flow, not just a score)."""
    model = _random_flow(SMALL, seed=2)
    p = torch.full((1, SMALL.group, 64), 0.05, dtype=torch.float64)
    grid = torch.linspace(-3, 3, 6001, dtype=torch.float64)
    y = torch.zeros(len(grid), SMALL.group, 64, dtype=torch.float64)
    y[:, 0, 5] = grid
    counts = torch.ones(len(grid), dtype=torch.long)     # one member: only row 0 is valid
    lp = model.log_prob(y, p.expand(len(grid), -1, -1), counts, torch.zeros(len(grid), dtype=torch.long),
                        torch.full((len(grid),), 0.1, dtype=torch.float64))
    # other valid entries of row 0 sit at y = 0 and are integrated out analytically: remove them
    lp0 = model.log_prob(torch.zeros(1, SMALL.group, 64, dtype=torch.float64), p, counts[:1],
                         torch.zeros(1, dtype=torch.long), torch.full((1,), 0.1, dtype=torch.float64))
    ctx = model.context(p, counts[:1], torch.zeros(1, dtype=torch.long), torch.full((1,), 0.1, dtype=torch.float64))
    z0 = (0 - ctx.mu[0, 0, 5]) / ctx.scale[0, 0, 5]
    single0 = -0.5 * (z0 ** 2 + gf.LOG_2PI) - torch.log(ctx.scale[0, 0, 5])
    single = lp - (lp0 - single0)
    mass = torch.trapezoid(torch.exp(single), grid)
    assert abs(float(mass) - 1.0) < 1e-6


def test_slots_cover_every_size_and_pad_to_the_spare_slot():
    index = slot_index(8)
    spare = int(index.max())
    assert index.shape == (3, 4, 8, 64)
    assert (index[:, 0, 1:] == spare).all() and (index[:, 3] != spare).all()
    used = index[index != spare]
    assert len(torch.unique(used)) == 3 * (1 + 2 + 3 + 4) * 64   # (size, Haar level) pairs x DCT x channel


def test_runtime_constants_match_the_model():
    assert flow_runtime.R_FLOOR == gf.R_FLOOR


def test_wiener_tables_reproduce_the_grouped_denoiser(monkeypatch):
    """Before any fit the flow's estimate is the Wiener shrinkage: the same image as denoise_rgb
    (with the Wiener pass's flat aggregation window)."""
    monkeypatch.setattr(grouped, "LEARNED_KAISER_BETA", 0.0)
    cfg = TableConfig()
    gain, weight = wiener_tables(cfg)
    tables = GroupTables(gain.numpy(), weight.numpy(), slot_index(cfg.group).numpy(), group_fit.axes_of(cfg))
    clean = np.random.default_rng(0).uniform(0.2, 0.8, (40, 48, 3)).astype(np.float32)
    noisy = group_data.noisy_copy(clean, 20.0, np.random.default_rng(1))
    ours = grouped.denoise_rgb(noisy, 20 / 255, group_filter=tables.filter_grouping)
    assert np.abs(ours - grouped.denoise_rgb(noisy, 20 / 255)).max() < 2e-3


def _photo(size: int, seed: int) -> np.ndarray:
    """A piecewise-smooth colour image with edges and texture, float32 in [0, 1]."""
    gen = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.zeros((size, size, 3))
    for _ in range(6):
        cy, cx, r = gen.uniform(0, 1, 3)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < (0.1 + 0.3 * r) ** 2] = gen.uniform(0.1, 0.9, 3)
    img += 0.08 * np.sin(40 * xx + 3 * gen.uniform())[..., None]
    return np.clip(img, 0, 1).astype(np.float32)


def test_fit_learns_beyond_wiener_and_resumes_exactly(tmp_path):
    photos = [(_photo(72, s) * 255).astype(np.uint8) for s in range(4)]
    shards = tmp_path / "shards"
    group_data.write_shards(photos, shards, 0, 2, crops=4, crop=48, keep=24, sigma_255=(15.0, 40.0))
    assert len(list(shards.glob("shard-*.npz"))) == 2
    cfg = TableConfig(r_bins=12, sigma_bins=4)
    rows = int(slot_index(cfg.group).max()) + 1
    whole = group_fit.add_shards(group_fit.Stats.empty(cfg, rows), shards, log=lambda s: None)
    first = group_fit.add_shards(group_fit.Stats.empty(cfg, rows), shards, limit=1, log=lambda s: None)
    group_fit.save_run(first, 0.5, tmp_path / "run")
    resumed = group_fit.add_shards(group_fit.load_stats(tmp_path / "run" / "stats.npz"), shards, log=lambda s: None)
    assert resumed.shards == whole.shards and np.allclose(resumed.sums, whole.sums)
    # the shards hold the clipped mean's groups, and the fit says so (the runtime maps back only then)
    assert whole.target == resumed.target == "clipped-mean"
    assert "clipped-mean" in str(np.load(tmp_path / "run" / "group_flow.npz")["meta"])
    clean_target = tmp_path / "clean"
    group_data.write_shards(photos, clean_target, 5, 1, crops=2, crop=48, keep=8, sigma_255=(15.0, 40.0),
                            clipped_target=False)
    with pytest.raises(SystemExit, match="its target is clean.*one per fit"):
        group_fit.add_shards(group_fit.load_stats(tmp_path / "run" / "stats.npz"), clean_target, log=lambda s: None)
    # the fitted estimate beats the Wiener shrinkage on the training groups (least squares)
    d = group_data.load_shards(shards)
    fitted = GroupTables(*group_fit.solve_tables(whole.sums, cfg, 0.5), slot_index(cfg.group).numpy(), group_fit.axes_of(cfg))
    wiener = GroupTables(*(t.numpy() for t in wiener_tables(cfg)), slot_index(cfg.group).numpy(), group_fit.axes_of(cfg))
    errors = {}
    for name, tables in (("fit", fitted), ("wiener", wiener)):
        err = 0.0
        for c in range(3):
            for s in np.unique(d["sigma"]):
                pick = (d["channel"] == c) & (d["sigma"] == s)
                est, _ = tables.filter(d["y"][pick], d["p"][pick], d["count"][pick], c, float(s))
                err += float(((est - d["x"][pick]) ** 2).sum() / s ** 2)
        errors[name] = err
    assert errors["fit"] < 0.95 * errors["wiener"]


def test_export_verifies_and_the_runtime_reads_the_graph(tmp_path, tiny_prior):
    """add_denoiser: graph verified (ORT vs autograd, kernel vs ORT), hashed in the manifest; a
    FlowDenoiser from the folder gives the fit's estimates; a tampered graph is refused."""
    import shutil

    from flowrt.errors import ModelError
    from flowrt.export.denoiser_export import add_denoiser
    from flowrt.prior.folders import DENOISER_ONNX, listed_files, open_model_dir, read_manifest
    cfg = TableConfig(r_bins=12, sigma_bins=4)
    model = _random_flow(cfg, seed=3).float()
    fit = tmp_path / "group_flow.npz"
    meta = '{"config": %s, "ridge": 0.5, "shards": ["a"]}' % __import__("json").dumps(cfg.to_dict())
    np.savez(fit, gain=model.gain.float().numpy(), weight=model.weight.float().numpy(), meta=np.array(meta))
    folder = tmp_path / "prior"
    shutil.copytree(tiny_prior, folder)
    section = add_denoiser(fit, folder)
    assert section["verification"]["passed"] and section["verification"]["tweedie_max_error_over_sigma"] < 1e-4
    manifest = read_manifest(folder)
    assert DENOISER_ONNX in listed_files(manifest)
    open_model_dir(folder, listed_files(manifest))       # hashes hold
    tables = FlowDenoiser.from_model_dir(folder).tables
    assert np.array_equal(tables.gain, model.gain.float().numpy())
    (folder / DENOISER_ONNX).write_bytes((folder / DENOISER_ONNX).read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelError, match="sha256"):
        open_model_dir(folder, listed_files(manifest))
