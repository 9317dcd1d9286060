"""A fixed set of fuzz cases (``benchmarks/fuzz_inputs.py``): seeded mutations of small valid PNG,
JPEG (baseline, progressive), TIFF (striped, tiled, deflate, LZW, PackBits) and model folders, each
loaded, planned and restored (1 MAP iteration) in this process. Every case must end in success (the
output decodes) or one line of a flowrt error with nothing written, within 30 s: never another
exception, a hang, a partial output or a stray file. The long run (5000+ cases) is in
``benchmarks/results/fuzz_inputs.md``.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from benchmarks import fuzz_inputs  # noqa: E402

# 300 consecutive cases, plus those that once failed (5315: a manifest with levels 99999999999 hung) (kept so they stay fixed)
CASES = list(range(300)) + [334, 358, 538, 705, 1270, 5315]


@pytest.fixture(scope="module")
def fuzz_setup(tiny_prior):
    from flowrt.prior.engines import load_prior
    return fuzz_inputs.make_seed_images(), Path(tiny_prior), load_prior(tiny_prior, "torch")


def test_mutated_inputs_end_in_success_or_one_line(fuzz_setup, tmp_path, monkeypatch):
    from PIL import Image
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", fuzz_inputs.PIXEL_LIMIT)
    logging.getLogger("flowrt").setLevel(logging.ERROR)
    try:
        seeds, model_dir, prior = fuzz_setup
        outcomes = [fuzz_inputs.run_case(case, tmp_path, seeds, model_dir, prior) for case in CASES]
    finally:
        logging.getLogger("flowrt").setLevel(logging.NOTSET)
    bad = [o for o in outcomes if o.result not in ("success", "user-error")]
    assert not bad, "\n".join(f"case {o.case} {o.seed_file} ({o.mutation}, {o.route}): {o.result}: {o.detail}"
                              for o in bad)
    kinds = {o.seed_file for o in outcomes}
    assert len(kinds) == len(seeds) + 1  # every seed file and the model folder were mutated
    results = {o.result for o in outcomes}
    assert results == {"success", "user-error"}  # both ends are reached: the mutations are not all fatal
    assert not list(tmp_path.iterdir())  # each case cleans up after itself


def test_mutations_are_seeded():
    seeds = fuzz_inputs.make_seed_images()
    import random
    first = fuzz_inputs.mutate(seeds["baseline.jpg"], "jpg", random.Random(7))
    assert first == fuzz_inputs.mutate(seeds["baseline.jpg"], "jpg", random.Random(7))
