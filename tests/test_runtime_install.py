"""``pip install flowrt`` without extras is the runtime: no torch, and it restores (issue 23, step 4).

A fresh virtual environment (no system site packages) gets flowrt installed from this checkout with
``pip install --no-deps --no-index`` (a real, non-editable install: the wheel's files, the packaged
prior). Its dependencies come from the distributions this test runs with, minus torch and what
ships with it: a folder of links to them is put on the venv's path, so the test needs no network
and no package index. Then, in that venv:

* flowrt's declared requirements (without extras) name no torch, and each one is installed;
* ``import torch`` fails;
* ``flowrt restore`` restores a noisy PNG and a JPEG with the packaged prior (engine auto: ort);
* a command that needs torch (``--engine torch``) says in one line what to install.
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
# Left out of the fresh venv's path: torch, what ships with it, and any other install of flowrt.
LEFT_OUT = ("torch", "functorch", "torchgen", "torchvision", "triton", "nvidia", "flowrt", "__editable__",
            "_flowrt", "easy-install")


def _site_dirs():
    """The site-packages folders this interpreter imports from (a venv's and the system's)."""
    dirs = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()]
    dirs += [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    return [Path(d) for d in dict.fromkeys(dirs) if Path(d).is_dir()]


def _link_farm(folder: Path) -> Path:
    """A folder of links to every installed distribution but torch's (first found wins)."""
    folder.mkdir()
    for directory in _site_dirs():
        for entry in directory.iterdir():
            if entry.name.lower().startswith(LEFT_OUT) or entry.suffix == ".pth" or entry.name == "__pycache__":
                continue
            link = folder / entry.name
            if not link.exists():
                link.symlink_to(entry)
    return folder


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory):
    """(python of a fresh venv with flowrt's runtime and no torch, environment to run it in)."""
    base = tmp_path_factory.mktemp("runtime")
    venv = base / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=300)
    if made.returncode != 0:
        pytest.skip(f"cannot make a virtual environment here: {made.stderr.strip()[-200:]}")
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "runtime_deps.pth").write_text(str(_link_farm(base / "deps")) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", NO_COLOR="1", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    source = base / "source"   # a copy: building in the checkout would leave build/ there
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", "tests", "benchmarks", "runs"))
    installed = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                                "--no-build-isolation", str(source)], capture_output=True, text=True,
                               timeout=900, env=env, cwd=base)
    assert installed.returncode == 0, installed.stderr[-2000:]
    return python, env, base


def _run(runtime_venv, *args, timeout: float = 600):
    python, env, base = runtime_venv
    return subprocess.run([str(python), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=base)


def _photo(h: int, w: int, sigma_255: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    clean = np.stack([128 + 80 * np.sin(0.11 * xx + 0.07 * yy + p) for p in (0.0, 2.0, 4.0)], -1)
    return np.clip(clean + rng.normal(0, sigma_255, clean.shape), 0, 255).astype(np.uint8)


def test_the_runtime_declares_no_torch_and_has_what_it_declares(runtime_venv):
    probe = _run(runtime_venv, "-c", """
import importlib.metadata as md, json, flowrt
from packaging.requirements import Requirement
plain = [Requirement(r) for r in md.requires("flowrt") if "extra ==" not in r]
missing = []
for req in plain:
    if req.marker is None or req.marker.evaluate():   # onnxruntime-gpu or onnxruntime, by platform
        try:
            md.version(req.name)
        except md.PackageNotFoundError:
            missing.append(req.name)
print(json.dumps({"names": [req.name for req in plain], "missing": missing, "file": flowrt.__file__}))
""")
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert not any(n.lower() in ("torch", "onnx", "onnxscript") for n in found["names"]), found["names"]
    assert found["missing"] == [] and str(ROOT) not in found["file"]   # the installed copy, not this checkout
    blocked = _run(runtime_venv, "-c", "import torch")
    assert blocked.returncode != 0 and "No module named 'torch'" in blocked.stderr


@pytest.mark.parametrize("suffix,extra", [(".png", ("--sigma", "15")), (".jpg", ())])
def test_the_runtime_restores_a_png_and_a_jpeg_without_torch(runtime_venv, suffix, extra):
    base = runtime_venv[2]
    src, out = base / f"in{suffix}", base / f"out{suffix}.png"
    Image.fromarray(_photo(45, 38, 15.0 if suffix == ".png" else 4.0, seed=3)).save(
        src, **({"quality": 30} if suffix == ".jpg" else {}))
    done = _run(runtime_venv, "-m", "flowrt.cli.main", "restore", src, "-o", out, *extra)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    # a JPEG runs the MAP on the ort engine; noise alone is the flow denoiser's estimate, no engine loaded
    assert ("engine ort on cpu" if suffix == ".jpg" else "flow denoiser alone") in done.stderr
    restored = np.asarray(Image.open(out))
    observed = np.asarray(Image.open(src).convert("RGB")).astype(np.float64)
    assert restored.shape == (45, 38, 3) and 0 < np.abs(restored - observed).mean() < 20


def test_asking_the_runtime_for_torch_is_one_line(runtime_venv):
    base = runtime_venv[2]
    src = base / "ask.png"
    Image.fromarray(_photo(20, 24, 10.0, seed=4)).save(src)
    refused = _run(runtime_venv, "-m", "flowrt.cli.main", "restore", src, "-o", base / "t.png", "--sigma", "10",
                   "--engine", "torch")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        'Error: --engine torch needs torch, which this install lacks: pip install "flowrt[torch]"']
    assert not (base / "t.png").exists()


def test_the_runtime_scores_and_reports_without_torch(runtime_venv):
    """flowrt score runs on ONNX Runtime; flowrt compare writes its page, without the bits/dim maps
    (drawn by the torch model) and says so in one line; score --map names the extra."""
    base = runtime_venv[2]
    before, after = base / "before.png", base / "after.png"
    Image.fromarray(_photo(32, 40, 12.0, seed=6)).save(before)
    Image.fromarray(_photo(32, 40, 0.0, seed=6)).save(after)
    scored = _run(runtime_venv, "-m", "flowrt.cli.main", "score", before)
    assert scored.returncode == 0 and "bits/dim" in scored.stdout + scored.stderr, scored.stderr
    page = base / "page.html"
    compared = _run(runtime_venv, "-m", "flowrt.cli.main", "compare", before, after, "-o", page)
    assert compared.returncode == 0, compared.stderr
    assert "no score maps" in compared.stderr and "<html" in page.read_text()
    mapped = _run(runtime_venv, "-m", "flowrt.cli.main", "score", before, "--map", base / "heat.png")
    assert mapped.returncode == 1 and "--map needs torch" in mapped.stderr and "Traceback" not in mapped.stderr
