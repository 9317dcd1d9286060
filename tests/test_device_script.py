"""The prepared GPU run (benchmarks/device/run.sh) works end to end in its dry run: a tiny training
leg on the CPU, its fit, the summary; the CUDA steps say they were skipped."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def test_device_script_dry_run(tmp_path, make_images):
    photos = tmp_path / "photos"
    make_images(photos, [(80, 96, ".png"), (96, 80, ".png")])
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, OUT=str(out), FLOWRT_DEVICE_DATA=str(photos), TRAIN_SECONDS="8", PYTHON=sys.executable)
    done = subprocess.run(["bash", str(ROOT / "benchmarks/device/run.sh"), "--dry-run"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["shards"] >= 1
    if not summary["cuda_tests"].startswith("skipped"):
        assert summary["cuda_tests"] == "passed"
    fit = np.load(out / "group_flow.npz")
    assert fit["gain"].ndim == 3 and np.isfinite(fit["gain"]).all()
