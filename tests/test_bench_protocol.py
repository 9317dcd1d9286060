"""The quality benchmark's protocol is deterministic and its metrics are right (synthetic images)."""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from benchmarks import metrics, protocol  # noqa: E402
from benchmarks.peers.resize import pillow_bicubic_matrix  # noqa: E402

pytest.importorskip("skimage")


def _photo(height: int = 37, width: int = 29, seed: int = 0) -> np.ndarray:
    """A smooth colour gradient plus texture, (height, width, 3) uint8, values away from 0/255."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    base = 60 + 100 * (rows / height)[..., None] + 30 * np.sin(cols / 3.0)[..., None]
    return np.clip(base + rng.normal(0, 10, (height, width, 3)), 0, 255).astype(np.uint8)


def test_seed_depends_on_task_and_name_only():
    assert protocol.seed_for("noise", "a.png") == protocol.seed_for("noise", "a.png")
    assert protocol.seed_for("noise", "a.png") != protocol.seed_for("multi", "a.png")
    assert protocol.seed_for("noise", "a.png") != protocol.seed_for("noise", "b.png")
    assert 0 <= protocol.seed_for("jpeg", "x") < 2 ** 63


@pytest.mark.parametrize("task", ["noise", "jpeg", "multi"])
def test_degradation_is_deterministic(task, tmp_path):
    clean = _photo()
    first = protocol.write_degraded(clean, "p.png", protocol.TASKS[task], tmp_path / "a")
    second = protocol.write_degraded(clean, "p.png", protocol.TASKS[task], tmp_path / "b")
    assert first.path.read_bytes() == second.path.read_bytes()
    assert np.array_equal(first.observed, second.observed)
    assert first.path.suffix == (".png" if task == "noise" else ".jpg")
    assert not list(first.path.parent.glob("*.tmp"))


def test_noise_is_rounded_clipped_gaussian_of_std_25():
    clean = np.full((64, 48, 3), 128, dtype=np.uint8)
    reference, encoded = protocol.degrade(clean, protocol.TASKS["noise"], seed=7)
    observed = np.asarray(Image.open(io.BytesIO(encoded))).astype(float)
    expected = np.clip(np.round(128 + np.random.default_rng(7).normal(0, 25, clean.shape)), 0, 255)
    assert np.array_equal(observed, expected)
    assert reference is clean or np.array_equal(reference, clean)
    assert abs((observed - 128).std() - 25) < 1.0


def test_jpeg_is_pillow_quality_20():
    clean = _photo()
    reference, encoded = protocol.degrade(clean, protocol.TASKS["jpeg"], seed=1)
    buffer = io.BytesIO()
    Image.fromarray(clean).save(buffer, format="JPEG", quality=20)
    assert encoded == buffer.getvalue()
    assert np.array_equal(reference, clean)


def test_multi_crops_to_even_sides_and_halves():
    clean = _photo(37, 29)
    reference, encoded = protocol.degrade(clean, protocol.TASKS["multi"], seed=3)
    assert reference.shape == (36, 28, 3)
    with Image.open(io.BytesIO(encoded)) as image:
        assert image.format == "JPEG" and image.size == (14, 18)
    small = np.asarray(Image.fromarray(reference).resize((14, 18), Image.BICUBIC)).astype(float)
    noisy = np.clip(np.round(small + np.random.default_rng(3).normal(0, 8, small.shape)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(noisy.astype(np.uint8)).save(buffer, format="JPEG", quality=50)
    assert encoded == buffer.getvalue()


def test_centre_crop_and_photo_listing(tmp_path):
    pixels = np.arange(10 * 8).reshape(10, 8)
    assert np.array_equal(protocol.centre_crop(pixels, 4, 4), pixels[3:7, 2:6])
    assert protocol.centre_crop(pixels, 20, 20).shape == (10, 8)
    for name in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in protocol.list_photos(tmp_path)] == ["a.jpg", "b.png"]
    assert [p.name for p in protocol.list_photos(tmp_path, limit=1)] == ["a.jpg"]


def test_psnr_ssim_known_values():
    clean = np.full((32, 32, 3), 0.5)
    assert metrics.psnr(clean, clean + 0.1) == pytest.approx(20.0)
    assert metrics.psnr(clean, clean) == float("inf")
    assert metrics.psnr(np.full((4, 4, 3), 100, np.uint8), np.full((4, 4, 3), 100, np.uint8)) == float("inf")
    photo = _photo(40, 40)
    assert metrics.ssim(photo, photo) == pytest.approx(1.0)
    assert metrics.ms_ssim(photo, photo) == pytest.approx(1.0)


def test_ssim_terms_match_gaussian_skimage():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(2)
    a = rng.random((33, 27))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    expected = structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
    assert metrics.ssim_terms(a, b)[0] == pytest.approx(expected, abs=1e-12)
    # One scale of MS-SSIM is plain Gaussian SSIM.
    assert metrics.ms_ssim_plane(a, b, scales=1) == pytest.approx(expected, abs=1e-12)


def test_ms_ssim_scale_count_and_monotone_in_noise():
    assert metrics.ms_ssim_scales(640, 1024) == 5
    assert metrics.ms_ssim_scales(176, 200) == 5
    assert metrics.ms_ssim_scales(128, 128) == 4
    assert metrics.ms_ssim_scales(21, 64) == 1
    photo = metrics.as_unit_float(_photo(96, 80))
    rng = np.random.default_rng(5)
    scores = [metrics.ms_ssim(photo, np.clip(photo + rng.normal(0, s, photo.shape), 0, 1))
              for s in (0.02, 0.08, 0.2)]
    assert 1 > scores[0] > scores[1] > scores[2] > 0


def test_halving_averages_2x2_and_replicates_odd_edge():
    plane = np.arange(15, dtype=float).reshape(3, 5)
    halved = metrics._halve(plane)
    assert halved.shape == (2, 3)
    assert halved[0, 0] == pytest.approx(np.mean([0, 1, 5, 6]))
    assert halved[1, 2] == pytest.approx(14.0)


@pytest.mark.parametrize("sizes", [(37, 18), (20, 10), (9, 23), (16, 16)])
def test_bicubic_matrix_matches_pillow(sizes):
    n_in, n_out = sizes
    signal = np.random.default_rng(4).random((n_in, 5)).astype(np.float32) * 255
    expected = np.asarray(Image.fromarray(signal, mode="F").resize((5, n_out), Image.BICUBIC))
    assert np.allclose(pillow_bicubic_matrix(n_in, n_out) @ signal, expected, atol=1e-3)


def test_quality_script_end_to_end(tmp_path):
    """Two tiny photos, cheap methods (and a 2-step DIP): both tables, JSON and markdown."""
    from benchmarks import quality

    for index in range(2):
        Image.fromarray(_photo(40, 44, seed=index)).save(tmp_path / f"p{index}.png")
    out = tmp_path / "out"
    argv = ["--data", str(tmp_path), "--out", str(out), "--methods", "input,tv,dip",
            "--tasks", "noise,multi", "--crop", "36", "--dip-photos", "1", "--dip-crop", "32",
            "--dip-iters", "2", "--dip-width", "8"]
    assert quality.main(argv) == 0
    first = (out / "quality.json").read_text()
    report = json.loads(first)
    main_set, dip_set = report["sets"]
    assert main_set["results"]["noise"]["tv"]["images"] == 2
    assert "dip" not in main_set["results"]["noise"]
    assert dip_set["results"]["multi"]["dip"]["images"] == 1
    assert main_set["results"]["noise"]["tv"]["psnr"] > main_set["results"]["noise"]["input"]["psnr"]
    assert report["methods"]["tv"]["weights"]["noise"] > 0
    table = (out / "quality.md").read_text()
    assert "| method | noise | multi |" in table and "| dip |" in table
    assert quality.main(argv) == 0
    again = json.loads((out / "quality.json").read_text())
    strip = lambda r: json.dumps([[{m: (s["psnr"], s["ssim"], s["ms_ssim"]) for m, s in t.items()}
                                   for t in st["results"].values()] for st in r["sets"]])
    assert strip(again) == strip(report)


def test_bm3d_peer_handles_grey_rgb():
    """bm3d_rgb divides by zero on R = G = B images (a JPEG of a grey photo); the peer doesn't."""
    pytest.importorskip("bm3d")
    from benchmarks.peers.bm3d_peer import denoise_colour

    grey = np.repeat(metrics.as_unit_float(_photo(24, 24))[..., :1], 3, axis=2)
    restored = denoise_colour(grey, 16 / 255)
    assert restored.shape == grey.shape and np.all(np.isfinite(restored))
    assert np.array_equal(restored[..., 0], restored[..., 2])


def test_jpegqs_peer_restores_a_jpeg(tmp_path):
    from benchmarks.peers.jpegqs_peer import JpegqsMethod

    method = JpegqsMethod()
    if method.missing():
        pytest.skip(method.missing())
    item = protocol.write_degraded(_photo(40, 48), "p.png", protocol.TASKS["multi"], tmp_path)
    restored = method.restore(item, tmp_path)
    assert restored.shape == item.clean.shape and restored.dtype == np.uint8
    assert not method.applies_to("noise")
