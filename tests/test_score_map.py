"""The per-pixel bits/dim map (flowrt.prior.density_map), its picture, and `flowrt score --map`."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from flowrt.prior.density_map import bits_map, nats_map
from flowrt.prior.folders import load_torch_prior
from flowrt.report.heatmap import LUT, colourize, render_heatmap, value_range


@pytest.fixture(scope="module")
def tiny_flow(tiny_prior):
    return load_torch_prior(tiny_prior)


@pytest.fixture(scope="module")
def default_flow():
    return load_torch_prior(None)


def smooth_with_noisy_patch(h=64, w=80, box=(24, 40, 40, 56), seed=0) -> np.ndarray:
    """(h, w, 3) uint8: slow colour waves, and strong noise (std 40) inside box = (y0, y1, x0, x1)."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 60 * np.sin(xx / 17.0 + yy / 29.0 + c) for c in range(3)], 2)
    y0, y1, x0, x1 = box
    img[y0:y1, x0:x1] += np.random.default_rng(seed).normal(0, 40, (y1 - y0, x1 - x0, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def test_map_sums_to_the_flows_log_density(tiny_flow):
    x = torch.rand(2, 3, 12, 20, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        per_pixel = nats_map(tiny_flow, x)
        expected = tiny_flow.log_prob(x)
    assert per_pixel.shape == (2, 12, 20)
    assert torch.allclose(per_pixel.sum((1, 2)), expected, rtol=1e-5)


def test_map_mean_is_the_images_bits_per_dim_and_keeps_the_crop(tiny_flow):
    rgb8 = np.random.default_rng(2).integers(0, 256, (23, 30, 3), dtype=np.uint8)
    result = bits_map(tiny_flow, rgb8, dequant="mid")
    assert result.bits.shape == (20, 28) and (result.top, result.left) == (1, 1)
    from flowrt.prior.scoring import dequantize
    x = torch.from_numpy(dequantize(rgb8[1:21, 1:29], "mid"))
    with torch.no_grad():
        assert result.bits_per_dim == pytest.approx(float(tiny_flow.bits_per_dim(x)), abs=1e-4)
    tiled = bits_map(tiny_flow, rgb8, dequant="mid", tile=8)   # tiles of 8: each tile scored alone
    assert tiled.bits.shape == result.bits.shape and np.all(np.isfinite(tiled.bits))


def test_a_damaged_patch_lights_up_under_the_default_prior(default_flow):
    box = (24, 40, 40, 56)
    result = bits_map(default_flow, smooth_with_noisy_patch(box=box))
    inside = np.zeros(result.bits.shape, bool)
    inside[box[0]:box[1], box[2]:box[3]] = True
    assert result.bits[inside].mean() > 3 * result.bits[~inside].mean()
    # the brightest pixels of the map are in the patch (a little spill across its border is allowed)
    hottest = result.bits > np.percentile(result.bits, 97)
    ring = np.zeros_like(inside)
    ring[box[0] - 4:box[1] + 4, box[2] - 4:box[3] + 4] = True
    assert hottest[ring].sum() == hottest.sum()


def test_an_over_smoothed_image_scores_lower_than_the_textured_one(default_flow):
    """What `flowrt score` warns about: lower bits/dim is not a better image."""
    from PIL import ImageFilter

    yy, xx = np.mgrid[0:64, 0:64]
    img = np.stack([128 + 50 * np.sin(xx / 5.0 + yy / 7.0 + c) + 30 * np.sin(xx / 2.3 - yy / 3.1) for c in range(3)], 2)
    img = np.clip(np.round(img + np.random.default_rng(0).normal(0, 4, img.shape)), 0, 255).astype(np.uint8)
    smoothed = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(2)))
    assert bits_map(default_flow, smoothed).bits_per_dim < bits_map(default_flow, img).bits_per_dim - 1


def test_heatmap_colours_and_colour_bar():
    bits = np.linspace(1, 5, 40 * 50).reshape(40, 50)
    assert value_range([bits], 0, 100) == pytest.approx((1, 5))
    rgb = colourize(bits, 1, 5)
    assert rgb.dtype == np.uint8 and (rgb[0, 0] == LUT[0]).all() and (rgb[-1, -1] == LUT[-1]).all()
    picture = render_heatmap(bits, (1, 5))
    assert picture.height >= 256 and picture.width > 50 * picture.height // 40   # enlarged, bar on the right
    assert np.asarray(picture)[picture.height // 2, : 50 * picture.height // 40].std() > 0


def test_cli_score_map_writes_a_png_and_says_lower_is_not_always_better(invoke_flowrt, tiny_prior, tmp_path):
    src = tmp_path / "patch.png"
    Image.fromarray(smooth_with_noisy_patch(32, 40, (8, 16, 16, 24))).save(src)
    heat = tmp_path / "heat.png"
    result = invoke_flowrt("score", src, "--model", tiny_prior, "--map", heat)
    assert result.exit_code == 0, result.output
    assert "bits/dim" in result.output and "lower is not always better" in result.output
    assert f"heat map in {heat}" in result.output
    with Image.open(heat) as picture:
        assert picture.format == "PNG" and picture.width > picture.height   # the map plus its bar


@pytest.mark.parametrize("name, message", [("heat.jpg", "must end in .png"), ("nowhere/heat.png", "does not exist"),
                                           ("patch.png", "inputs are never overwritten")])
def test_cli_score_map_refuses_bad_destinations_in_one_line(invoke_flowrt, tiny_prior, tmp_path, name, message):
    src = tmp_path / "patch.png"
    Image.fromarray(smooth_with_noisy_patch(32, 40, (8, 16, 16, 24))).save(src)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = invoke_flowrt("score", src, "--model", tiny_prior, "--map", tmp_path / name)
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before
