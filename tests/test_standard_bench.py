"""The standard benchmark (benchmarks/standard.py): its tasks are deterministic and what they say,
and the script runs end to end on tiny synthetic photos with cheap methods."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from benchmarks import standard, standard_methods, standard_tasks  # noqa: E402
from benchmarks.peers.base import upsampled_observation  # noqa: E402

pytest.importorskip("skimage")
TASKS = standard_tasks.STANDARD_TASKS


def _photo(height: int = 40, width: int = 44, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    base = 60 + 100 * (rows / height)[..., None] + 30 * np.sin(cols / 3.0)[..., None]
    return np.clip(base + rng.normal(0, 10, (height, width, 3)), 0, 255).astype(np.uint8)


def test_holes_cover_the_fraction_with_bounded_blobs():
    holes = standard_tasks.blob_holes(120, 100, 0.2, np.random.default_rng(3))
    again = standard_tasks.blob_holes(120, 100, 0.2, np.random.default_rng(3))
    assert np.array_equal(holes, again)
    assert 0.2 <= holes.mean() < 0.25
    assert holes.any(axis=0).sum() > 50 and holes.any(axis=1).sum() > 50   # spread, not one lump


def test_inpaint_and_deblur_items(tmp_path):
    clean = _photo()
    item = standard_tasks.write_standard(clean, "p.png", TASKS["inpaint"], tmp_path)
    mask = np.asarray(Image.open(item.mask_path).convert("L")) > 127
    assert np.array_equal(mask, item.holes) and np.all(item.observed[item.holes] == 0)
    assert np.array_equal(item.observed[~item.holes], clean[~item.holes])
    assert standard_tasks.flowrt_arguments(item) == ["--mask", str(item.mask_path), "--sigma", "0"]
    blurred = standard_tasks.write_standard(clean, "p.png", TASKS["deblur"], tmp_path)
    assert standard_tasks.flowrt_arguments(blurred) == ["--blur", "gaussian:1.6", "--sigma", "2"]
    assert blurred.observed.shape == clean.shape and not np.array_equal(blurred.observed, clean)
    again = standard_tasks.write_standard(clean, "p.png", TASKS["deblur"], tmp_path / "b")
    assert blurred.path.read_bytes() == again.path.read_bytes()


def test_task_flags_and_bm3d_sigmas(tmp_path):
    clean = _photo()
    flags = {name: standard_tasks.flowrt_arguments(standard_tasks.write_standard(clean, "p.png", TASKS[name], tmp_path))
             for name in ("noise50", "jpeg10", "sr2", "multi")}
    assert flags == {"noise50": ["--sigma", "50"], "jpeg10": [], "sr2": ["--scale", "2", "--sigma", "0"],
                     "multi": ["--scale", "2", "--sigma", "8"]}
    sigma = {name: standard_methods.bm3d_sigma(task) for name, task in TASKS.items()}
    assert sigma["noise15"] == 15 and sigma["jpeg20"] == 16 and sigma["multi"] == 20
    assert sigma["jpeg10"] > 16 > sigma["jpeg40"] > 0
    assert sigma["sr2"] is sigma["deblur"] is sigma["inpaint"] is None


class _GreyFill:
    """A plugged-in row: the (upsampled) observation with its holes grey."""
    name = "greyfill"

    def applies_to(self, task):
        return True

    def missing(self):
        return None

    def restore(self, item, workdir):
        out = upsampled_observation(item).copy()
        if item.holes is not None:
            out[item.holes] = 128
        return out

    def describe(self):
        return {"what": "grey fill"}


class _Absent(_GreyFill):
    name = "absent"

    def missing(self):
        return "not installed here"


def test_script_writes_json_and_markdown(tmp_path, monkeypatch):
    monkeypatch.setitem(standard_methods.METHODS, "greyfill", _GreyFill)
    monkeypatch.setitem(standard_methods.METHODS, "absent", _Absent)
    for index in range(3):
        Image.fromarray(_photo(seed=index)).save(tmp_path / f"p{index}.png")
    out = tmp_path / "out"
    argv = ["--data", str(tmp_path), "--out", str(out), "--photos", "2", "--tasks", "sr2,inpaint",
            "--methods", "bicubic,greyfill,absent"]
    assert standard.main(argv) == 0
    report = json.loads((out / "standard.json").read_text())
    assert report["photos"] == ["p0.png", "p1.png"] and report["skipped"] == {"absent": "not installed here"}
    sr2, inpaint = report["summary"]["sr2"], report["summary"]["inpaint"]
    assert sr2["methods"]["bicubic"]["psnr"] == pytest.approx(sr2["input"]["psnr"], abs=1e-3)
    assert "bicubic" not in inpaint["methods"] and inpaint["methods"]["greyfill"]["photos"] == 2
    assert inpaint["methods"]["greyfill"]["hole_psnr"] > inpaint["input"]["hole_psnr"]
    per_photo = json.loads((out / "photos" / "p1.json").read_text())
    assert set(per_photo["tasks"]) == {"sr2", "inpaint"}
    table = (out / "standard.md").read_text()
    assert "| method | sr2 | inpaint |" in table and "absent: not installed here" in table
    assert "PSNR in holes" in table and "| greyfill |" in table
    # --resume keeps what is there: a record edited in place survives a rerun
    per_photo["tasks"]["sr2"]["methods"]["greyfill"]["psnr"] = 99.0
    (out / "photos" / "p1.json").write_text(json.dumps(per_photo))
    assert standard.main(argv + ["--resume"]) == 0
    again = json.loads((out / "photos" / "p1.json").read_text())
    assert again["tasks"]["sr2"]["methods"]["greyfill"]["psnr"] == 99.0


def test_bad_selection_is_one_line(tmp_path):
    Image.fromarray(_photo()).save(tmp_path / "p0.png")
    with pytest.raises(SystemExit, match="no photo nope"):
        standard.main(["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--photos", "nope"])
    with pytest.raises(SystemExit):
        standard.main(["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--tasks", "denoise"])
