"""A manifest edited to plausible values (hashes intact: the manifest is what lists them) is refused in
one line on both engines, before any image is padded or allocated (issue 24, build point 3)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml
from PIL import Image

from flowrt.prior.folders import PACKAGED_MODELS

EDITS = {
    "levels 16": ({"architecture": {"levels": 16}, "size_rule": {"multiple": 65536}}, "levels"),
    "levels 10": ({"architecture": {"levels": 10}, "size_rule": {"multiple": 1024}}, "levels"),
    "levels 4": ({"architecture": {"levels": 4}, "size_rule": {"multiple": 16}}, "levels"),
    "levels 2": ({"architecture": {"levels": 2}, "size_rule": {"multiple": 4}}, "levels"),
    "channels nan": ({"architecture": {"channels": float("nan")}}, "channels"),
    "channels 4": ({"architecture": {"channels": 4}}, "channels"),
    "multiple true": ({"architecture": {"levels": 1}, "size_rule": {"multiple": 2}}, "levels"),
}


def _edited_prior(folder, edit: dict):
    shutil.copytree(PACKAGED_MODELS / "default", folder)
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text())
    for section, values in edit.items():
        manifest[section].update(values)
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    return folder


@pytest.mark.parametrize("engine", ["ort", "torch"])
@pytest.mark.parametrize("name", list(EDITS))
def test_an_edited_manifest_is_one_line(name, engine, tmp_path, invoke_flowrt, one_line_error):
    edit, fragment = EDITS[name]
    prior = _edited_prior(tmp_path / "prior", edit)
    img = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(img)
    result = invoke_flowrt("restore", img, "-o", tmp_path / "out.png", "--sigma", "20", "--iters", "1",
                           "--start", "blur", "--model", prior, "--engine", engine)
    line = one_line_error(result, "")
    assert any(word in line for word in (fragment, "multiple", "architecture")), line
    assert not (tmp_path / "out.png").exists()


def test_the_packaged_manifest_passes_the_graph_checks():
    from flowrt.prior.ort_gradient import OrtPriorGradient
    assert OrtPriorGradient(None, device="cpu", threads=1).multiple == 8
