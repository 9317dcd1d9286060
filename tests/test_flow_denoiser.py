"""The packaged flow denoiser does the restoring: it beats its noisy input and a Gaussian-blur
baseline by clear margins on a seeded image, where a prior that returns its input fails the same check; a restore with --denoiser flow (and auto) calls it and runs no MAP for noise alone."""
import numpy as np
import pytest

from flowrt.denoise.flow import FlowDenoiser, GroupTables, packaged_flow_denoiser

SIGMA = 25.0


def _psnr(a, b):
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - b) ** 2)))


def _scene(size=96, seed=0):
    """Piecewise-smooth colour regions with edges, a gradient and a fine texture: float32 [0, 1]."""
    gen = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.stack([0.3 + 0.4 * xx, 0.5 - 0.3 * yy, 0.4 + 0.2 * xx * yy], axis=2)
    for _ in range(7):
        cy, cx, r = gen.uniform(0, 1, 3)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < (0.08 + 0.25 * r) ** 2] = gen.uniform(0.1, 0.9, 3)
    img[: size // 3] += 0.06 * np.sin(60 * xx[: size // 3])[..., None]
    return np.clip(img, 0, 1).astype(np.float32)


def _noisy(clean, seed=1):
    noisy = clean * 255 + SIGMA * np.random.default_rng(seed).standard_normal(clean.shape)
    return (np.clip(np.round(noisy), 0, 255) / 255).astype(np.float32)


def _best_blur(noisy, clean):
    from scipy.ndimage import gaussian_filter
    return max(_psnr(gaussian_filter(noisy, (s, s, 0)), clean) for s in (0.6, 0.9, 1.3, 1.8, 2.5))


def _restores(denoiser, clean, noisy) -> bool:
    """The check a useful prior passes: clear margins over the input and the best Gaussian blur.
    (Against the grouped denoiser it is measured on photos, in benchmarks/: on this cartoon-like
    scene the tables fitted to photos are not expected to win.)"""
    ours = _psnr(denoiser.denoise(noisy, SIGMA / 255), clean)
    return ours > _psnr(noisy, clean) + 6.0 and ours > _best_blur(noisy, clean) + 2.0


def test_the_packaged_flow_denoiser_restores_and_a_useless_one_does_not():
    clean = _scene()
    noisy = _noisy(clean)
    assert _restores(packaged_flow_denoiser(), clean, noisy)
    tables = packaged_flow_denoiser().tables
    identity = GroupTables(np.full_like(tables.gain, 0.999), np.zeros_like(tables.weight), tables.slots, tables.axes)
    assert not _restores(FlowDenoiser(identity), clean, noisy)       # returns (almost) its input


def test_restore_calls_the_flow_denoiser_and_no_map_for_noise_alone(monkeypatch, map_runs):
    import flowrt
    calls = []
    real = FlowDenoiser.denoise

    def recording(self, rgb, sigma, **kw):
        calls.append(sigma)
        return real(self, rgb, sigma, **kw)
    monkeypatch.setattr(FlowDenoiser, "denoise", recording)
    clean = _scene(64)
    noisy = (_noisy(clean) * 255).round().astype(np.uint8)
    for name in ("flow", "auto"):
        result = flowrt.restore(noisy, sigma=SIGMA, denoiser=name)
        assert "flow denoiser" in result.plan.describe()
        assert _psnr(result.image / 255.0, clean) > _psnr(noisy / 255.0, clean) + 5
    assert calls == [pytest.approx(SIGMA / 255)] * 2
    assert map_runs == []                                           # the denoiser's estimate is the restore
    flowrt.restore(noisy, sigma=SIGMA, denoiser="grouped")
    assert len(calls) == 2 and map_runs == []                       # grouped: its estimate is the restore too


def test_the_fused_kernel_equals_gather_filter_and_put_back():
    """tweedie_patches (gathers as it goes) against gather_groups + tweedie_groups + inverse Haar."""
    from flowrt.denoise import grouped, kernels as K
    tables = packaged_flow_denoiser().tables
    rng = np.random.default_rng(3)
    clean = rng.uniform(0.2, 0.8, (48, 56, 3)).astype(np.float32)
    noisy = np.clip(clean + rng.normal(0, 25 / 255, clean.shape), 0, 1).astype(np.float32)
    grouping = grouped.group_planes(grouped._planes(noisy, False), 25 / 255)
    n = len(grouping.counts)
    for channel in range(3):
        fused, w_fused = tables.filter_grouping(grouping, channel, 5, n, 25 / 255)
        y, p = (K.gather_groups(c[channel], grouping.ys, grouping.xs, grouping.counts, 5, n)
                for c in (grouping.coefs, grouping.pilot_coefs))
        est, w = tables.filter(y, p, grouping.counts[5:], channel, 25 / 255)
        for q in range(len(est)):
            K._haar(est[q], grouping.counts[5 + q], True)
        assert np.allclose(fused, est, atol=1e-6) and np.allclose(w_fused, w, rtol=1e-6)


def test_a_noise_alone_restore_loads_no_prior_engine(tmp_path):
    """The flow denoiser's estimate is the whole restore: no onnxruntime session, no onnx, no torch
    imported; the summary names no engine. --iters 2 brings the prior (and its engine) back."""
    import subprocess
    import sys
    from PIL import Image
    Image.fromarray((_noisy(_scene(48)) * 255).round().astype(np.uint8)).save(tmp_path / "n.png")
    code = ("import sys; from flowrt.cli.main import cli\n"
            "try:\n    cli(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'torch') if m in sys.modules))")
    runs = {}
    for extra in ([], ["--iters", "2", "--engine", "ort"]):
        proc = subprocess.run([sys.executable, "-c", code, "restore", str(tmp_path / "n.png"), "-o",
                               str(tmp_path / "o.png"), "--sigma", "20", *extra], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        runs[bool(extra)] = (proc.stdout.strip().splitlines()[-1], proc.stderr)
    assert runs[False][0] == "[]" and "flow denoiser alone" in runs[False][1] and "engine" not in runs[False][1]
    assert "onnxruntime" in runs[True][0] and "engine ort on cpu" in runs[True][1]


def test_an_explicit_engine_that_cannot_run_is_refused_even_when_no_prior_runs(monkeypatch, tmp_path, invoke_flowrt):
    from PIL import Image
    import flowrt.errors
    Image.fromarray((_noisy(_scene(32)) * 255).round().astype(np.uint8)).save(tmp_path / "n.png")
    monkeypatch.setattr(flowrt.errors, "torch_installed", lambda: False)
    result = invoke_flowrt("restore", tmp_path / "n.png", "-o", tmp_path / "o.png", "--sigma", "20", "--engine", "torch")
    assert result.exit_code == 1 and "--engine torch needs torch" in result.output
    assert not (tmp_path / "o.png").exists()
