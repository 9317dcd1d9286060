"""The tuning stage's differentiable pass is the runtime's learned pass (gather, estimate, inverse
Haar, weighted put-back, Kaiser overlap-add), and its factors at 1 / 0 give the fit / Wiener tables."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from flowrt.denoise import grouped as G  # noqa: E402
from flowrt.denoise import kernels as K  # noqa: E402
from flowrt.denoise.flow import packaged_flow_denoiser  # noqa: E402
from flowrt.prior.group_flow import TableConfig, wiener_tables  # noqa: E402
from flowrt.train.group_tune import AveragedEstimate, crop_example, haar_inverse, tuned_tables  # noqa: E402


def _scene(side: int = 40) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side] / side
    return np.stack([0.5 + 0.3 * np.sin(6 * xx), 0.4 + 0.3 * yy, 0.6 - 0.2 * (xx > 0.5)], axis=2).astype(np.float32)


def test_haar_inverse_is_the_kernels_inverse():
    for k in (2, 8, 32):
        rows = np.random.default_rng(k).standard_normal((k, K.COEFS)).astype(np.float32)
        forward = rows.copy()
        K._haar(forward, k, False)
        assert np.allclose(haar_inverse(k) @ forward, rows, atol=1e-5)


def test_the_differentiable_pass_is_the_runtimes():
    tables = packaged_flow_denoiser().tables
    cfg = TableConfig(r_min=tables.axes[0], r_max=tables.axes[1], r_bins=int(tables.axes[2]),
                      sigma_bins=int(tables.axes[5]))
    example = crop_example(_scene(), 20.0, np.random.default_rng(0))
    from flowrt.train.group_data import noisy_copy
    noisy = noisy_copy(_scene(), 20.0, np.random.default_rng(0))   # the same draw crop_example made
    grouping = G.group_planes(G._planes(noisy, False), 20 / 255)
    model = AveragedEstimate(cfg)
    for channel in range(3):
        expected = G._filter_learned(grouping, channel, 20 / 255, K.dct_matrix(), tables.filter_grouping)
        image, covered = model.image(torch.from_numpy(tables.gain), torch.from_numpy(tables.weight), example, channel)
        assert bool(covered.all())
        assert np.abs(image.numpy() - expected).max() < 1e-5


def test_factors_span_the_wiener_shrinkage_and_the_fit():
    cfg = TableConfig()
    wiener = wiener_tables(cfg)[0].float()
    fit_gain, fit_weight = torch.rand_like(wiener), torch.rand_like(wiener)
    ones, zeros = torch.ones(wiener.shape[:2]), torch.zeros(wiener.shape[:2])
    gain, weight = tuned_tables(ones, ones, fit_gain, fit_weight, wiener)
    assert torch.allclose(gain, fit_gain, atol=1e-6) and torch.equal(weight, fit_weight)
    gain, weight = tuned_tables(zeros, zeros, fit_gain, fit_weight, wiener)
    assert torch.equal(gain, wiener) and not weight.any()


def test_zero_steps_write_the_blend_and_keep_how_the_tables_were_made(tmp_path):
    import json

    from PIL import Image

    from flowrt.train import group_tune
    cfg = TableConfig(r_bins=6, sigma_bins=3)
    wiener = wiener_tables(cfg)[0].numpy()
    gen = np.random.default_rng(0)
    fit_gain, fit_weight = gen.uniform(0, 1, wiener.shape).astype(np.float32), gen.normal(0, 1, wiener.shape).astype(np.float32)
    meta = {"config": cfg.to_dict(), "ridge": 0.5, "shards": ["a"], "target": "clipped-mean", "pilot_graph": "",
            "tune": {"steps": 1600}}
    np.savez(tmp_path / "fit.npz", gain=fit_gain, weight=fit_weight, meta=np.array(json.dumps(meta)))
    (tmp_path / "photos").mkdir()
    Image.fromarray((_scene(48) * 255).astype(np.uint8)).save(tmp_path / "photos" / "a.png")
    group_tune.main(["--fit", str(tmp_path / "fit.npz"), "--data", str(tmp_path / "photos"), "--out",
                     str(tmp_path / "run"), "--steps", "0", "--init", "0.7", "--crop", "32"])
    out = np.load(tmp_path / "run" / "group_flow.npz")
    assert np.allclose(out["gain"], wiener + 0.7 * (fit_gain - wiener), atol=1e-6)
    assert np.allclose(out["weight"], 0.7 * fit_weight, atol=1e-6)
    made = json.loads(str(out["meta"]))["tune"]
    assert made["steps"] == 0 and made["init"] == 0.7 and made["before"] == {"steps": 1600}
