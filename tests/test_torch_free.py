"""``flowrt restore --engine ort`` with torch made unimportable (issue 11, step 2's last Done-when).

Each run is a child process whose ``sitecustomize`` puts a finder at the front of ``sys.meta_path``
that refuses ``torch`` and every ``torch.*`` (ImportError) and records each attempt; at exit it
writes the attempts and whether ``torch`` reached ``sys.modules``. The packaged default prior
restores a small PNG with noise (denoised start, the numpy MAP loop) and a small JPEG (its own
tables: the numpy JPEG data term); both must succeed, write a whole image, and never ask for torch.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

BLOCKER = '''
import atexit, json, os, sys

ATTEMPTS = []


class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            ATTEMPTS.append(name)
            raise ImportError(f"torch is blocked in this test ({name})")
        return None


sys.meta_path.insert(0, BlockTorch())


@atexit.register
def _report():
    with open(os.environ["FLOWRT_TORCH_REPORT"], "w") as fh:
        json.dump({"attempts": ATTEMPTS, "loaded": sorted(m for m in sys.modules if m.split(".")[0] == "torch")}, fh)
'''


@pytest.fixture
def run_without_torch(tmp_path):
    """run(*python_args): ``python ARGS`` with torch blocked; (CompletedProcess, report dict)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    report = tmp_path / "torch_report.json"

    def run(*args, timeout: float = 300):
        env = dict(os.environ, OMP_NUM_THREADS="1", NO_COLOR="1", PYTHONWARNINGS="ignore",
                   FLOWRT_TORCH_REPORT=str(report),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
        proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=tmp_path)
        return proc, json.loads(report.read_text())
    return run


def photo(h: int, w: int, sigma_255: float, seed: int) -> np.ndarray:
    """uint8 (h, w, 3): smooth colour waves plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    clean = np.stack([128 + 80 * np.sin(0.11 * xx + 0.07 * yy + p) for p in (0.0, 2.0, 4.0)], -1)
    return np.clip(clean + rng.normal(0, sigma_255, clean.shape), 0, 255).astype(np.uint8)


def test_the_blocker_really_blocks_torch(run_without_torch):
    proc, report = run_without_torch("-c", "import torch")
    assert proc.returncode == 1 and "torch is blocked" in proc.stderr
    assert report == {"attempts": ["torch"], "loaded": []}


@pytest.mark.parametrize("suffix,extra", [(".png", ("--sigma", "15")), (".jpg", ())])
def test_restore_with_the_ort_engine_never_imports_torch(run_without_torch, tmp_path, suffix, extra):
    src, out = tmp_path / f"in{suffix}", tmp_path / "out.png"
    options = {"quality": 30} if suffix == ".jpg" else {}
    Image.fromarray(photo(45, 38, 15.0 if suffix == ".png" else 4.0, seed=3)).save(src, **options)
    proc, report = run_without_torch("-m", "flowrt.cli.main", "restore", src, "-o", out, "--engine", "ort", "-v", *extra)
    assert proc.returncode == 0, proc.stderr
    assert report == {"attempts": [], "loaded": []}, report
    assert "Traceback" not in proc.stderr
    # a JPEG runs the MAP on the ort engine; noise alone is the flow denoiser's estimate, no engine loaded
    assert ("engine ort on cpu" if suffix == ".jpg" else "flow denoiser alone") in proc.stderr
    restored = np.asarray(Image.open(out))
    assert restored.shape == (45, 38, 3) and restored.dtype == np.uint8
    observed = np.asarray(Image.open(src).convert("RGB")).astype(np.float64)
    assert 0 < np.abs(restored - observed).mean() < 20  # changed, and still the same picture


def test_an_upscale_with_the_split_start_never_imports_torch(run_without_torch, tmp_path):
    """--scale with a noisy JPEG takes the splitting start (flowrt.solve.splitting), torch-free too."""
    src, out = tmp_path / "small.jpg", tmp_path / "out.png"
    Image.fromarray(photo(24, 20, 6.0, seed=5)).save(src, quality=50)
    proc, report = run_without_torch("-m", "flowrt.cli.main", "restore", src, "-o", out, "--engine", "ort",
                                     "--scale", "2", "--sigma", "6", "-v")
    assert proc.returncode == 0, proc.stderr
    assert report == {"attempts": [], "loaded": []}, report
    assert np.asarray(Image.open(out)).shape == (48, 40, 3)


def test_a_user_mistake_without_torch_is_still_one_line(run_without_torch, tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(photo(20, 24, 10.0, seed=4)).save(src)
    proc, report = run_without_torch("-m", "flowrt.cli.main", "restore", src, "-o", tmp_path / "out.png",
                                     "--engine", "ort", "--blur", "gaussian:99")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("Error:")] and report["loaded"] == []


def test_an_inpainting_restore_never_imports_torch(run_without_torch, tmp_path):
    """--mask alone takes the inpainting splitting (flowrt.solve.inpaint) with the flow denoiser, torch-free."""
    src, mask, out = tmp_path / "holes.png", tmp_path / "mask.png", tmp_path / "out.png"
    holes = np.zeros((32, 28), bool)
    holes[10:18, 8:16] = True
    Image.fromarray(np.where(holes[..., None], 0, photo(32, 28, 0.0, seed=6)).astype(np.uint8)).save(src)
    Image.fromarray(np.where(holes, 255, 0).astype(np.uint8)).save(mask)
    proc, report = run_without_torch("-m", "flowrt.cli.main", "restore", src, "-o", out, "--mask", mask,
                                     "--sigma", "0", "-v")
    assert proc.returncode == 0, proc.stderr
    assert report == {"attempts": [], "loaded": []}, report
    assert "inpainting: smooth fill" in proc.stderr
    assert np.asarray(Image.open(out))[holes].mean() > 40   # the black holes are filled
