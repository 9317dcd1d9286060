"""The report page in a real headless browser (Debian's ``chromium``): it loads with no console error,
no failed or outside request and every picture decoded, and its before/after slider moves under a
real mouse drag and the keyboard, uncovering the other picture.

Chromium is driven over the DevTools protocol through ``--remote-debugging-pipe``
(benchmarks/headless_chromium.py, standard library only). Where no browser is installed the test is
skipped, saying so; ``.ci/run`` installs Debian's chromium first, so in CI it runs.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.headless_chromium import Chromium, find_chromium  # noqa: E402

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it; "
                             "or set $CHROMIUM to a Chromium-family browser)")


def scene(h: int, w: int, seed: int, noise: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 70 * np.sin(xx / 7.0 + yy / 11.0 + c + seed) for c in range(3)], 2)
    return np.clip(np.round(img + rng.normal(0, noise, img.shape)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def batch_page(tiny_prior, tmp_path_factory) -> Path:
    """A real ``flowrt batch --report`` page over two small noisy images (tiny prior, 2 iterations)."""
    from flowrt.cli.main import cli

    root = tmp_path_factory.mktemp("browser")
    (root / "in").mkdir()
    for i, (h, w) in enumerate(((40, 56), (36, 36))):
        Image.fromarray(scene(h, w, i, 20)).save(root / "in" / f"photo{i}.png")
    page = root / "out" / "report.html"
    result = CliRunner().invoke(cli, ["batch", str(root / "in"), "-o", str(root / "out"), "--report", str(page),
                                      "--model", str(tiny_prior), "--iters", "2", "--sigma", "20"])
    assert result.exit_code == 0, result.output
    return page


SLIDER = "document.querySelectorAll('.split')[{i}]"
FIGURE = "document.querySelectorAll('.compare')[{i}]"


def test_report_loads_cleanly_and_its_slider_moves(batch_page):
    with Chromium(CHROMIUM) as browser:
        browser.call("Network.enable")
        browser.open(batch_page)
        assert browser.problems() == []
        requests = [e["params"]["request"]["url"] for e in browser.events if e["method"] == "Network.requestWillBeSent"]
        assert all(url.startswith(("file:", "data:")) for url in requests), requests
        assert browser.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
        assert browser.evaluate("document.images.length") == 2 * 4   # before, after and two maps each
        assert browser.evaluate("document.querySelectorAll('input[type=range]').length") == 2

        # a real drag of the first slider from its middle to a fifth of the way
        box = browser.box(".split")
        y = box["y"] + box["height"] / 2
        browser.drag(box["x"] + box["width"] / 2, y, box["x"] + box["width"] * 0.2)
        value = float(browser.evaluate(SLIDER.format(i=0) + ".value"))
        assert 15 < value < 25
        assert browser.evaluate(f"getComputedStyle({FIGURE.format(i=0)}).getPropertyValue('--pos')") == f"{value:g}%"
        # what is under the pointer: the input left of the split, the result right of it
        figure = browser.box(".compare")
        fy = figure["y"] + figure["height"] / 2
        left = browser.evaluate(f"document.elementFromPoint({figure['x'] + 0.1 * figure['width']}, {fy}).className")
        right = browser.evaluate(f"document.elementFromPoint({figure['x'] + 0.3 * figure['width']}, {fy}).className")
        assert (left, right) == ("before", "after")

        # the keyboard moves the second slider (an accessible control, not a mouse-only widget)
        browser.evaluate(SLIDER.format(i=1) + ".focus()")
        for _ in range(4):
            for kind in ("keyDown", "keyUp"):
                browser.call("Input.dispatchKeyEvent", {"type": kind, "key": "ArrowRight", "code": "ArrowRight",
                                                        "windowsVirtualKeyCode": 39})
        assert float(browser.evaluate(SLIDER.format(i=1) + ".value")) > 50
        assert browser.evaluate(f"getComputedStyle({FIGURE.format(i=1)}).getPropertyValue('--pos')") != "50%"
        assert browser.problems() == []
