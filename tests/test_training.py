"""The training loop in-process on a tiny model: loss falls, resume is bit-for-bit, files are right."""
from __future__ import annotations

import json
import math

import pytest
import torch

from flowrt.train import loop
from flowrt.train.checkpoint import FORMAT, CheckpointError, load_model, read_checkpoint
from flowrt.train.config import OptimConfig, load_yaml, override, to_dict
from flowrt.prior.flow import FlowModel


class Interrupted(Exception):
    """Stands for a crash (power cut, Ctrl-C) right after a checkpoint was written."""


@pytest.fixture
def config_for(tmp_path, train_dir, val_dir, make_config):
    """Build a tiny TrainConfig writing to tmp_path/OUT, with per-section overrides."""
    def build(out: str, **sections) -> "loop.TrainConfig":
        path = make_config(tmp_path / f"{out}.yaml", sections)
        cfg = load_yaml(str(path))
        return override(cfg, data__train_dir=str(train_dir), data__val_dir=str(val_dir),
                        run__out=str(tmp_path / out)).validate()
    return build


def read_metrics(out) -> list:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


def assert_same_optimizer(a: dict, b: dict) -> None:
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for idx in a["state"]:
        assert_same_tensors(a["state"][idx], b["state"][idx])


def test_a_few_steps_lower_the_loss(config_for, tmp_path):
    cfg = config_for("fall", optim={"steps": 30, "lr": 0.01}, run={"val_every": 15, "ckpt_every": 30})
    last = loop.train(cfg, progress=False)
    rows = read_metrics(tmp_path / "fall")
    first, final = rows[:3], rows[-3:]
    mean = lambda rs, key: sum(r[key] for r in rs) / len(rs)
    assert mean(final, "loss") < mean(first, "loss") - 0.1
    assert mean(final, "nll_bpd") < mean(first, "nll_bpd") - 0.1
    vals = [r["val_bpd"] for r in rows if "val_bpd" in r]
    assert len(vals) == 2 and vals[-1] < vals[0]
    assert last["step"] == 30 and math.isfinite(last["val_bpd"])


def test_resume_continues_bit_for_bit(config_for, tmp_path, monkeypatch):
    """6 steps in one go == 3 steps, a crash after the checkpoint, then --resume for the other 3."""
    sections = dict(optim={"steps": 6}, run={"ckpt_every": 3, "val_every": 3})
    straight = config_for("straight", **sections)
    loop.train(straight, progress=False)

    halves = config_for("halves", **sections)
    real_save = loop._save

    def save_then_crash(model, opt, cfg, step, *args):
        real_save(model, opt, cfg, step, *args)
        if step == 3:
            raise Interrupted
    monkeypatch.setattr(loop, "_save", save_then_crash)
    with pytest.raises(Interrupted):
        loop.train(halves, progress=False)
    assert read_checkpoint(str(tmp_path / "halves" / "last.pt"))["step"] == 3
    monkeypatch.setattr(loop, "_save", real_save)
    loop.train(halves, resume=True, progress=False)

    a = read_checkpoint(str(tmp_path / "straight" / "last.pt"))
    b = read_checkpoint(str(tmp_path / "halves" / "last.pt"))
    assert a["step"] == b["step"] == 6
    assert_same_tensors(a["model"], b["model"])
    assert_same_optimizer(a["optimizer"], b["optimizer"])
    assert all(torch.equal(x, y) for x, y in zip(a["rng"]["data"], b["rng"]["data"]))
    # Every logged figure but the wall-clock throughput is identical, step by step.
    strip = lambda rows: [{k: v for k, v in r.items() if k != "patches_per_s"} for r in rows]
    assert strip(read_metrics(tmp_path / "halves")) == strip(read_metrics(tmp_path / "straight"))


def test_resume_after_a_crash_between_checkpoints_logs_each_step_once(config_for, tmp_path, monkeypatch):
    """Crash at step 4 (checkpoint at 3): the resumed run re-does step 4 and the log reads as one run."""
    sections = dict(optim={"steps": 6}, run={"ckpt_every": 3, "val_every": 2})
    loop.train(config_for("straight", **sections), progress=False)

    crashing = config_for("crashing", **sections)
    real_progress = loop._progress

    class CrashAtStep4:
        def __init__(self, bar):
            self.bar, self.done = bar, 0

        def update(self, n):
            self.done += n
            if self.done == 4:
                raise Interrupted

        def __getattr__(self, name):
            return getattr(self.bar, name)
    monkeypatch.setattr(loop, "_progress", lambda *a, **k: CrashAtStep4(real_progress(*a, **k)))
    with pytest.raises(Interrupted):
        loop.train(crashing, progress=False)
    with open(tmp_path / "crashing" / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 5, "lo')   # a line the crash cut short
    assert read_checkpoint(str(tmp_path / "crashing" / "last.pt"))["step"] == 3
    monkeypatch.setattr(loop, "_progress", real_progress)
    loop.train(crashing, resume=True, progress=False)

    strip = lambda rows: [{k: v for k, v in r.items() if k != "patches_per_s"} for r in rows]
    assert strip(read_metrics(tmp_path / "crashing")) == strip(read_metrics(tmp_path / "straight"))
    a = read_checkpoint(str(tmp_path / "straight" / "last.pt"))
    b = read_checkpoint(str(tmp_path / "crashing" / "last.pt"))
    assert_same_tensors(a["model"], b["model"])


def test_a_fresh_run_refuses_to_replace_a_checkpoint(config_for, tmp_path):
    cfg = config_for("taken", optim={"steps": 2})
    loop.train(cfg, progress=False)
    before = {p.name: p.read_bytes() for p in (tmp_path / "taken").iterdir()}
    with pytest.raises(CheckpointError, match="exists: pass --resume"):
        loop.train(cfg, progress=False)
    assert {p.name: p.read_bytes() for p in (tmp_path / "taken").iterdir()} == before


def test_resume_of_a_finished_run_changes_nothing(config_for, tmp_path):
    cfg = config_for("done", optim={"steps": 2})
    loop.train(cfg, progress=False)
    before = (tmp_path / "done" / "last.pt").read_bytes()
    loop.train(cfg, resume=True, progress=False)
    assert (tmp_path / "done" / "last.pt").read_bytes() == before


def test_metrics_are_json_lines_with_every_figure(config_for, tmp_path):
    cfg = config_for("metrics", optim={"steps": 4}, run={"log_every": 1, "val_every": 2})
    loop.train(cfg, progress=False)
    rows = read_metrics(tmp_path / "metrics")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for r in rows:
        assert {"loss", "nll_bpd", "ln", "in", "lr", "grad_norm", "patches_per_s"} <= r.keys()
        assert "ae" not in r   # b_ae = 0 switches the term off
        assert all(math.isfinite(v) for v in r.values())
        assert r["lr"] == pytest.approx(loop.lr_at(r["step"] - 1, cfg.optim))
        assert r["patches_per_s"] > 0
    assert ["val_bpd" in r for r in rows] == [False, True, False, True]


def test_validation_steps_are_logged_whatever_log_every_is(config_for, tmp_path):
    cfg = config_for("valsteps", optim={"steps": 7}, run={"log_every": 2, "val_every": 3, "ckpt_every": 7})
    loop.train(cfg, progress=False)
    rows = read_metrics(tmp_path / "valsteps")
    assert [r["step"] for r in rows] == [2, 3, 4, 6, 7]
    assert [r["step"] for r in rows if "val_bpd" in r] == [3, 6, 7]


def test_checkpoint_holds_weights_config_step_optimizer_and_rng(config_for, tmp_path):
    cfg = config_for("ckpt", optim={"steps": 3}, run={"ckpt_every": 2})
    loop.train(cfg, progress=False)
    out = tmp_path / "ckpt"
    # Only finished files: the atomic writes leave no temporaries behind.
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "last.pt", "metrics.jsonl"]
    ckpt = read_checkpoint(str(out / "last.pt"))
    assert ckpt["format"] == FORMAT
    assert ckpt["config"] == to_dict(cfg) == json.loads((out / "config.json").read_text())
    assert ckpt["step"] == 3
    assert ckpt["model"].keys() == FlowModel(cfg.model).state_dict().keys()
    assert len(ckpt["optimizer"]["state"]) == len(list(FlowModel(cfg.model).parameters()))
    assert len(ckpt["rng"]["data"]) == 1   # one data generator per process

    model, loaded_cfg = load_model(str(out / "last.pt"))
    assert loaded_cfg == cfg and not model.training and model.initialized
    assert_same_tensors(model.state_dict(), ckpt["model"])
    x = torch.rand(2, 3, 8, 12, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(model.bits_per_dim(x)).all()


def test_lr_warms_up_linearly_then_decays_by_cosine():
    cfg = OptimConfig(lr=1.0, warmup=4, steps=20, min_lr_ratio=0.1)
    assert [loop.lr_at(s, cfg) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    decay = [loop.lr_at(s, cfg) for s in range(4, 21)]
    assert decay[0] == pytest.approx(1.0)
    assert all(b <= a for a, b in zip(decay, decay[1:]))
    assert loop.lr_at(12, cfg) == pytest.approx(0.1 + 0.9 * 0.5)   # half way: the cosine's midpoint
    assert decay[-1] == pytest.approx(0.1) and loop.lr_at(100, cfg) == pytest.approx(0.1)
