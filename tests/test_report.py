"""The HTML pages (flowrt.report): self-contained, one slider and score maps per image; `flowrt compare`
and `flowrt batch --report` end to end with the tiny prior. The page in a real browser is in
test_report_browser.py."""
from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from flowrt.cli.main import cli
from flowrt.pipeline.batch import ImageRecord
from flowrt.report.page import ReportItem, render_page
from flowrt.report.preview import PREVIEW_SIDE


def waves(h: int, w: int, seed: int = 0, noise: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 60 * np.sin(xx / 9.0 + yy / 13.0 + c) for c in range(3)], 2)
    return np.clip(np.round(img + rng.normal(0, noise, img.shape)), 0, 255).astype(np.uint8)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def embedded_images(text: str) -> list:
    """Every <img src>: each must be a data URI (checked by the callers) of a decodable picture."""
    return re.findall(r'<img[^>]* src="([^"]+)"', text)


def assert_self_contained(text: str) -> None:
    """No URL the browser would fetch: every src/href is a data URI or an in-page anchor."""
    for attr, value in re.findall(r'\b(src|href)="([^"]*)"', text):
        assert value.startswith(("data:", "#")), (attr, value[:80])
    assert "http://" not in text and "https://" not in text and "@import" not in text and "url(" not in text
    assert "default-src 'none'" in text   # the page's CSP forbids fetching anything else too


def test_page_has_one_slider_per_image_and_embeds_everything():
    items = [ReportItem(f"pic{i}.png", waves(30, 40, i, 20), waves(30, 40, i), (("plan", "noise sigma 20.0"),
                                                                               ("time", "1.5 s")),
                        np.random.default_rng(i).random((28, 40)), np.zeros((28, 40)), 3.2, 1.1) for i in range(2)]
    text = render_page(items, title="t <&>", notes=["a note"], failures=["bad.png: truncated"])
    assert_self_contained(text)
    assert text.count('type="range"') == 2 and text.count('class="before"') == 2
    assert "t &lt;&amp;&gt;" in text and "noise sigma 20.0" in text and "bad.png: truncated" in text
    assert "lower is not always better" in text.lower() and "3.200" in text and "1.100" in text
    for src in embedded_images(text):
        mime, data = re.match(r"data:(image/(?:png|jpeg));base64,(.*)", src).groups()
        Image.open(__import__("io").BytesIO(base64.b64decode(data))).verify()
    assert len(embedded_images(text)) == 2 * 4   # before, after, two maps per image


def test_large_images_are_downscaled_and_the_page_says_so():
    big = ReportItem("big.png", waves(600, 1500), waves(600, 1500))
    text = render_page([big], title="big")
    assert f"downscaled from 1500×600 to {PREVIEW_SIDE}×384" in text
    for src in embedded_images(text):
        with Image.open(__import__("io").BytesIO(base64.b64decode(src.split(",", 1)[1]))) as picture:
            assert picture.size == (PREVIEW_SIDE, 384)


def test_compare_writes_a_page_with_maps(tiny_prior, tmp_path):
    Image.fromarray(waves(24, 32, 0, 25)).save(tmp_path / "noisy.png")
    Image.fromarray(waves(48, 64, 0)).save(tmp_path / "x2.png")   # a x2 result
    page = tmp_path / "page.html"
    result = invoke("compare", tmp_path / "noisy.png", tmp_path / "x2.png", "-o", page, "--model", tiny_prior)
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert_self_contained(text)
    assert 'type="range"' in text and "Where the bits go" in text and "x2 (the input is shown enlarged" in text


def test_compare_and_score_give_one_bits_per_dim_in_one_named_mode(tiny_prior, tmp_path):
    """The page scored with 'mid' dequantisation and score with 'uniform' (2.256 against 2.465 for one
    file, neither saying so); now one mode, named in both outputs."""
    Image.fromarray(waves(24, 32, 0, 25)).save(tmp_path / "noisy.png")
    page = tmp_path / "page.html"
    assert invoke("compare", tmp_path / "noisy.png", tmp_path / "noisy.png", "-o", page,
                  "--model", tiny_prior).exit_code == 0
    scored = invoke("score", tmp_path / "noisy.png", "--model", tiny_prior, "--device", "cpu")
    assert scored.exit_code == 0, scored.output
    figure = float(scored.stdout.split()[0])
    text = page.read_text()
    on_page = re.findall(r"(\d+\.\d+) bits/dim</figcaption>", text)
    assert len(on_page) == 2 and all(float(v) == pytest.approx(figure, abs=1e-3) for v in on_page), (on_page, figure)
    assert "uniform dequantisation, seed 0" in scored.stdout and "uniform dequantisation, seed 0" in text


@pytest.mark.parametrize("args, message", [
    (("noisy.png", "noisy.png", "-o", "page.txt"), "must end in .html"),
    (("noisy.png", "noisy.png", "-o", "nowhere/page.html"), "does not exist"),
    (("noisy.png", "half.png", "-o", "page.html"), "not the size of"),
    (("noisy.png", "missing.png", "-o", "page.html"), "missing.png"),
])
def test_compare_errors_are_one_line_and_leave_nothing(tiny_prior, tmp_path, args, message, monkeypatch):
    Image.fromarray(waves(24, 32, 0, 25)).save(tmp_path / "noisy.png")
    Image.fromarray(waves(12, 20, 0)).save(tmp_path / "half.png")
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = invoke("compare", *args, "--model", tiny_prior, "--no-maps")
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_batch_records_what_it_did(tiny_prior, tmp_path):
    from flowrt.pipeline.batch import BatchJob, run_batch
    from flowrt.pipeline.plan import RestoreOptions
    from flowrt.prior.folders import load_torch_prior
    from flowrt.solve.solver import SolverConfig

    (tmp_path / "in").mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(waves(20, 28, len(name), 10)).save(tmp_path / "in" / name)
    job = BatchJob.plan(str(tmp_path / "in"), str(tmp_path / "out"))
    opts = RestoreOptions(sigma=10.0, solver=SolverConfig(iters=2))
    summary = run_batch(job, opts, load_torch_prior(tiny_prior), report=lambda line: None)
    assert [r.source.name for r in summary.records] == ["a.png", "b.png"]
    for record in summary.records:
        assert isinstance(record, ImageRecord) and record.output.is_file() and record.seconds > 0
        assert "noise sigma 10.0" in record.plan


def test_batch_report_into_the_new_output_folder(tiny_prior, tmp_path):
    (tmp_path / "in").mkdir()
    Image.fromarray(waves(20, 28, 1, 10)).save(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "bad.png").write_bytes(b"not a png")
    report = tmp_path / "out" / "report.html"
    result = invoke("batch", tmp_path / "in", "-o", tmp_path / "out", "--report", report, "--model", tiny_prior,
                    "--iters", "2", "--sigma", "10")
    assert result.exit_code == 1, result.output   # bad.png failed; the page is still written
    text = report.read_text()
    assert_self_contained(text)
    assert text.count('type="range"') == 1 and "a.png" in text and "Not restored" in text and "bad.png" in text
    assert "noise sigma 10.0" in text and re.search(r"<td>\d+\.\d s</td>", text)
    assert "then 2 flow-MAP iterations; engine torch on cpu" in text   # what ran, not only what was asked
    assert f"report: {report}" in result.stderr


def test_batch_report_lists_skipped_images_with_their_existing_outputs(tiny_prior, tmp_path):
    (tmp_path / "in").mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(waves(20, 28, len(name), 10)).save(tmp_path / "in" / name)
    first = invoke("batch", tmp_path / "in", "-o", tmp_path / "out", "--model", tiny_prior, "--iters", "2",
                   "--sigma", "10")
    assert first.exit_code == 0, first.output
    Image.fromarray(waves(20, 28, 7, 10)).save(tmp_path / "in" / "c.png")   # new since the first run
    report = tmp_path / "report.html"
    again = invoke("batch", tmp_path / "in", "-o", tmp_path / "out", "--skip-existing", "--report", report,
                   "--model", tiny_prior, "--iters", "2", "--sigma", "10")
    assert again.exit_code == 0 and "restored 1 image(s), skipped 2 already done" in again.output, again.output
    text = report.read_text()
    assert_self_contained(text)
    assert text.count('type="range"') == 3 and "Not restored" not in text
    table = text.split("<table class=summary>")[1].split("</table>")[0]
    rows = dict(re.findall(r'<tr><td><a href="#img\d+">([^<]+)</a></td>(.*?)</tr>', table))
    assert sorted(rows) == ["a.png", "b.png", "c.png"]
    assert "<td>skipped</td>" in rows["a.png"] and "<td>skipped</td>" in rows["b.png"]
    assert re.search(r"<td>\d+\.\d s</td>", rows["c.png"]) and "existed already (--skip-existing)" in text
    assert str(tmp_path / "out" / "a.png") in text and str(tmp_path / "out" / "b.png") in text


def test_batch_report_path_is_checked_before_any_work(tiny_prior, tmp_path):
    (tmp_path / "in").mkdir()
    Image.fromarray(waves(20, 28, 1, 10)).save(tmp_path / "in" / "a.png")
    result = invoke("batch", tmp_path / "in", "-o", tmp_path / "out", "--report", tmp_path / "r.pdf",
                    "--model", tiny_prior, "--iters", "2")
    assert result.exit_code != 0 and "must end in .html" in result.output
    assert not (tmp_path / "out").exists()


def test_readme_see_the_results_commands_run(tiny_prior, tmp_path, monkeypatch):
    """The README's "See the results" block, run as written (plus the tiny prior and 2 iterations)."""
    import shlex

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("### See the results", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line.split("#", 1)[0]) for line in block.strip().splitlines()]
    assert [c[:2] for c in commands] == [["flowrt", "score"], ["flowrt", "compare"], ["flowrt", "batch"]]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    for name in ("photo.png", "noisy.png", "restored.png", "photos/a.png"):
        Image.fromarray(waves(24, 32, len(name), 10)).save(tmp_path / name)
    for command in commands:
        extra = ["--iters", "2", "--sigma", "10"] if command[1] == "batch" else []
        result = invoke(*command[1:], "--model", tiny_prior, *extra)
        assert result.exit_code == 0, (command, result.output)
    assert (tmp_path / "heat.png").is_file() and (tmp_path / "page.html").is_file()
    assert (tmp_path / "restored" / "report.html").is_file()
