"""``flowrt train`` on bad input.

Most cases run the click group in-process (``invoke_flowrt``, cheap); two run
the real command in a child process, to see exactly what a user's terminal gets.
Every mistake must give exactly one clear line on stderr, a non-zero exit, no
traceback, and leave nothing half-written: a fresh run folder is not created,
an existing one keeps its checkpoint and metrics byte for byte.
"""
from __future__ import annotations

import pytest
import torch

from flowrt.train import loop
from flowrt.train.config import load_yaml, override


def exit_code(proc) -> int:
    """Exit status of a CompletedProcess or of click's in-process Result."""
    return proc.returncode if hasattr(proc, "returncode") else proc.exit_code


def assert_no_traceback(proc) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    leaked = getattr(proc, "exception", None)   # in-process: anything but SystemExit would be a traceback
    assert leaked is None or isinstance(leaked, SystemExit), repr(leaked)


def assert_one_line_error(proc, *fragments: str) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert exit_code(proc) != 0, proc.stderr
    assert_no_traceback(proc)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert proc.stdout == ""
    return lines[0]


def snapshot(folder) -> dict:
    """name -> bytes of every file in a folder (what 'nothing half-written' compares)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def corrupt_files(folder, good_image) -> None:
    """Two unreadable 'images': garbage bytes, and a JPEG cut in half."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "garbage.png").write_bytes(b"this is not a PNG file at all" * 10)
    data = good_image.read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])


def train_in_process(config_path, train_dir, out, steps: int = 2) -> None:
    cfg = override(load_yaml(str(config_path)), data__train_dir=str(train_dir), data__val_dir=None,
                   run__out=str(out), optim__steps=steps)
    loop.train(cfg.validate(), progress=False)


# --- the data folder -------------------------------------------------------------------------

def test_empty_data_folder(invoke_flowrt, tiny_config, tmp_path):
    (tmp_path / "empty").mkdir()
    proc = invoke_flowrt("train", "--config", tiny_config, "--data", tmp_path / "empty", "--out", tmp_path / "run")
    assert_one_line_error(proc, "no PNG, JPEG or TIFF images", str(tmp_path / "empty"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind", ["missing", "a_file"])
def test_data_folder_that_is_not_a_folder(invoke_flowrt, tiny_config, tmp_path, kind):
    data = tmp_path / "photos"
    if kind == "a_file":
        data.write_text("not a folder")
    proc = invoke_flowrt("train", "--config", tiny_config, "--data", data, "--out", tmp_path / "run")
    assert_one_line_error(proc, "data folder not found", str(data))
    assert not (tmp_path / "run").exists()


def test_folder_of_only_unreadable_images(invoke_flowrt, tiny_config, tmp_path, train_dir, caplog):
    corrupt_files(tmp_path / "bad", train_dir / "img01.jpg")
    proc = invoke_flowrt("train", "--config", tiny_config, "--data", tmp_path / "bad", "--out", tmp_path / "run")
    assert_one_line_error(proc, "no usable images", "2 unreadable, 0 smaller than 16 px")
    # Each skipped file was also warned about, by name (in-process the log goes to caplog, not stderr).
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sum("skipping unreadable image" in m for m in warned) == 2
    assert not (tmp_path / "run").exists()


def test_images_smaller_than_the_patch(invoke_flowrt, tiny_config, tmp_path, make_images):
    make_images(tmp_path / "small", [(15, 40, ".png"), (30, 9, ".png")])
    proc = invoke_flowrt("train", "--config", tiny_config, "--data", tmp_path / "small", "--out", tmp_path / "run")
    assert_one_line_error(proc, "no usable images", "2 smaller than 16 px")
    assert not (tmp_path / "run").exists()


def test_corrupt_files_among_good_ones_are_skipped_warned_and_counted(run_flowrt, tiny_config, tmp_path, train_dir):
    corrupt_files(train_dir, train_dir / "img01.jpg")
    out = tmp_path / "run"
    proc = run_flowrt("train", "--config", tiny_config, "--data", train_dir, "--out", out, "--steps", 2)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"skipping unreadable image {train_dir / 'garbage.png'}" in proc.stderr
    assert f"skipping unreadable image {train_dir / 'truncated.jpg'}" in proc.stderr
    assert "training on 3 images; skipped 2 unreadable and 0 too small" in proc.stderr
    assert "trained to step 2" in proc.stdout
    assert (out / "last.pt").is_file()


def test_bad_validation_folder(invoke_flowrt, tiny_config, tmp_path, train_dir):
    (tmp_path / "noval").mkdir()
    proc = invoke_flowrt("train", "--config", tiny_config, "--data", train_dir, "--val", tmp_path / "noval",
                      "--out", tmp_path / "run")
    assert_one_line_error(proc, "no PNG, JPEG or TIFF images", "noval")
    assert not (tmp_path / "run").exists()


# --- the config ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, fragment", [
    ("model:\n  levelz: 2\n", "unknown config key 'model.levelz'"),
    ("data:\n  patch: big\n", "config key 'data.patch' must be an integer"),
    ("model: [1, 2\n", "is not valid YAML"),
    ("data:\n  patch: 18\n", "must be divisible by 2^levels = 4"),
])
def test_bad_config_file(invoke_flowrt, tiny_config, tmp_path, train_dir, text, fragment):
    bad = tmp_path / "bad.yaml"
    bad.write_text(tiny_config.read_text() + text if "patch: 18" in text else text)
    proc = invoke_flowrt("train", "--config", bad, "--data", train_dir, "--out", tmp_path / "run")
    assert_one_line_error(proc, fragment)
    assert not (tmp_path / "run").exists()


def test_missing_config_file(invoke_flowrt, tmp_path, train_dir):
    proc = invoke_flowrt("train", "--config", tmp_path / "nope.yaml", "--data", train_dir, "--out", tmp_path / "run")
    assert_one_line_error(proc, "config file not found")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_asked_for_without_cuda(invoke_flowrt, tiny_config, tmp_path, train_dir):
    proc = invoke_flowrt("train", "--config", tiny_config, "--data", train_dir, "--out", tmp_path / "run",
                      "--device", "cuda")
    assert_one_line_error(proc, "CUDA is not available")
    assert not (tmp_path / "run").exists()


# --- resuming --------------------------------------------------------------------------------

def test_resume_without_a_checkpoint(run_flowrt, tiny_config, tmp_path, train_dir):
    out = tmp_path / "run"
    proc = run_flowrt("train", "--config", tiny_config, "--data", train_dir, "--out", out, "--resume")
    assert_one_line_error(proc, "--resume: no checkpoint at", str(out / "last.pt"))
    assert not out.exists()


def test_resume_with_a_checkpoint_of_another_architecture(invoke_flowrt, tiny_config, make_config, tmp_path, train_dir):
    out = tmp_path / "run"
    train_in_process(tiny_config, train_dir, out)
    before = snapshot(out)
    wider = make_config(tmp_path / "wider.yaml", {"model": {"width": 16}})
    proc = invoke_flowrt("train", "--config", wider, "--data", train_dir, "--out", out, "--resume", "--steps", 4)
    assert_one_line_error(proc, "holds another architecture", "width=8", "width=16")
    assert snapshot(out) == before


def test_resume_with_a_corrupt_checkpoint(invoke_flowrt, tiny_config, tmp_path, train_dir):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes(b"\x00garbage" * 100)
    before = snapshot(out)
    proc = invoke_flowrt("train", "--config", tiny_config, "--data", train_dir, "--out", out, "--resume")
    assert_one_line_error(proc, "is not a readable flowrt checkpoint")
    assert snapshot(out) == before


def test_fresh_run_into_a_folder_with_a_checkpoint(invoke_flowrt, tiny_config, tmp_path, train_dir):
    out = tmp_path / "run"
    train_in_process(tiny_config, train_dir, out)
    before = snapshot(out)
    proc = invoke_flowrt("train", "--config", tiny_config, "--data", train_dir, "--out", out)
    assert_one_line_error(proc, str(out / "last.pt"), "exists: pass --resume")
    assert snapshot(out) == before


@pytest.mark.parametrize("value", ["null", '""'])
def test_no_training_folder_at_all(invoke_flowrt, make_config, tmp_path, value):
    config = tmp_path / "nodata.yaml"   # the tiny config, with train_dir null or empty and no --data
    config.write_text(make_config(tmp_path / "base.yaml").read_text().replace("train_dir: null", f"train_dir: {value}"))
    proc = invoke_flowrt("train", "--config", config, "--out", tmp_path / "run")
    assert_one_line_error(proc, "no training data: pass --data DIR")
    assert not (tmp_path / "run").exists()
