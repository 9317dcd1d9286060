"""The README's Python example runs as written, on a small noisy photo with the packaged prior."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(section: str) -> list:
    """The ```python blocks of one '## ' section of the README."""
    text = README.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def test_python_api_example_runs(tmp_path, monkeypatch, capsys):
    blocks = python_blocks("Python API")
    assert blocks, "the README's Python API section has no python example"
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:24, 0:32]
    clean = np.stack([90 + 3 * xx, 160 - 2 * yy, 120 + xx + yy], axis=2).astype(np.float64)
    Image.fromarray(np.clip(np.round(clean + rng.normal(0, 25, clean.shape)), 0, 255).astype(np.uint8)).save(
        tmp_path / "noisy.png")
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, str(README), "exec"), {"__name__": "readme_example"})
    said = capsys.readouterr().out
    assert "noise sigma 25.0 (given)" in said and "(estimated)" in said and "float64" in said
