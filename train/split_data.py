"""Training groups for the flow denoiser's final stage: the splitting's last round, as it runs.

The splitting (``flowrt.solve.splitting``) ends with one denoiser call whose estimate is the
restore. Its input is not a noisy photo: it is a data step's output (an upsampled or deconvolved
image with the operator's own residue), and its pilot is the previous round's estimate. The first
stage's tables were fitted on Gaussian noise, and there the Wiener pass runs instead; a final stage
fitted on exactly these rounds is what the flow adds to upscaling and deblurring.

Each crop of a clean photo is degraded by one of ``TASKS`` (chosen in turn), restored by
``flowrt.restore`` with the packaged flow denoiser, and the last round's input, pilot and std are
recorded by a denoiser wrapped around it; the groups are then made by
``flowrt.denoise.grouped.group_planes``, the very call that round's pass makes, with the clean crop's
groups at the same places as the target. Shards have ``flowrt.train.group_data``'s arrays, with
``clipped`` 0 (the target is the clean crop: the splitting does not undo a clipping) and
``pilot_graph`` = ``FINAL_PILOT``, which sends their fit to ``denoiser_final.onnx`` on export. Shards
are written atomically and named by their seed, so an interrupted run resumes.

    python -m flowrt.train.split_data --data ../shared/data/train-bsds ../shared/data/train --out SHARDS
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from flowrt.prior.folders import FINAL_PILOT

from .group_data import kept_groups, random_crop, read_photos, shard_arguments, write_seeded

log = logging.getLogger("flowrt.train.split_data")

@dataclass(frozen=True)
class SplitTask:
    """A degradation of the training crops: Pillow bicubic down by ``scale`` (as flowrt's
    downsampling operator models it), or flowrt's Gaussian blur of std ``blur_std`` pixels, then
    noise of std ``noise`` (0-255 scale); ``options`` are what ``flowrt.restore`` is told."""
    scale: int = 1
    blur_std: float = 0.0
    noise: float = 0.0

    @property
    def options(self) -> dict:
        blur = {"blur": f"gaussian:{self.blur_std:g}"} if self.blur_std else {}
        return dict(scale=self.scale, sigma=self.noise, **blur)


TASKS: Dict[str, SplitTask] = {"sr2": SplitTask(scale=2), "sr3": SplitTask(scale=3),
                               "deblur": SplitTask(blur_std=1.6, noise=2.0)}
_RECORDER = "split-data-recorder"   # the registry name the recording denoiser is lent for a restore


class _LastRound:
    """A Denoiser that is the packaged flow denoiser, remembering its last final round."""
    name = _RECORDER

    def __init__(self, inner):
        self.inner = inner
        self.estimates_clipped_mean = inner.estimates_clipped_mean
        self.seen: Optional[tuple] = None

    def denoise(self, rgb, sigma, *, greyscale=False, coarse=False, pilot=None, final=False):
        if final and pilot is not None:
            self.seen = (rgb.copy(), pilot.copy(), float(sigma))
        return self.inner.denoise(rgb, sigma, greyscale=greyscale, coarse=coarse, pilot=pilot)


def degrade(clean: np.ndarray, task: SplitTask, rng: np.random.Generator) -> np.ndarray:
    """The observation of ``clean`` float32 (H, W, 3) in [0, 1] under ``task``: uint8."""
    from PIL import Image
    pixels = np.round(clean * 255.0).astype(np.uint8)
    if task.scale > 1:
        h, w = clean.shape[:2]
        pixels = np.asarray(Image.fromarray(pixels).resize((w // task.scale, h // task.scale), Image.BICUBIC))
    return blur_and_noise(pixels, task.blur_std, task.noise, rng) if task.blur_std else pixels


def blur_and_noise(clean: np.ndarray, blur_std: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Blur clean (H, W, 3) uint8 with flowrt's own Gaussian kernel of std ``blur_std`` pixels through
    its numpy chain (the restorer's model, edges included), add N(0, sigma^2) noise (0-255 scale)
    drawn from ``rng``, round and clip: (H, W, 3) uint8."""
    from flowrt.numeric.chain import build_forward_model
    from flowrt.numeric.kernels import gaussian_kernel
    x = clean.astype(np.float32) / 255.0
    model = build_forward_model(x, sigma=sigma, blur=gaussian_kernel(blur_std))
    blurred = model.apply(x.transpose(2, 0, 1)[None])[0]
    noisy = blurred.transpose(1, 2, 0) + rng.normal(0, sigma / 255.0, x.shape)
    return np.clip(np.round(noisy * 255.0), 0, 255).astype(np.uint8)


def last_round(observed: np.ndarray, task: SplitTask, recorder: _LastRound) -> tuple:
    """(input, pilot, sigma) of the splitting's last round restoring ``observed`` under ``task``."""
    import flowrt
    from flowrt.denoise.base import DENOISERS
    recorder.seen = None
    DENOISERS[_RECORDER] = lambda: recorder
    try:
        flowrt.restore(observed, denoiser=_RECORDER, iters=0, **task.options)   # the start is what is recorded
    finally:
        del DENOISERS[_RECORDER]
    if recorder.seen is None:
        raise RuntimeError(f"{task}: the restore ran no splitting")
    return recorder.seen


def crop_groups(clean: np.ndarray, task: str, keep: int, rng: np.random.Generator,
                recorder: _LastRound) -> Dict[str, np.ndarray]:
    """The channel-groups of ``keep`` random references of one crop's last round (arrays as in
    ``flowrt.train.group_data``), against the clean crop."""
    from flowrt.denoise import grouped as G
    rgb, pilot, sigma = last_round(degrade(clean, TASKS[task], rng), TASKS[task], recorder)
    grouping = G.group_planes(G._planes(rgb, False), sigma, G._planes(pilot, False))
    return kept_groups(grouping, clean, sigma, keep, rng, clipped_target=False)


def write_shards(photos: List[np.ndarray], out: Path, first_seed: int, shards: int, crops: int, crop: int,
                 keep: int, tasks: Sequence[str], denoiser=None) -> None:
    """Shards ``first_seed ..`` into ``out``, skipping those present; crop i of a shard is degraded by
    tasks[i % len(tasks)]. ``denoiser``: the flow denoiser to record (default: the packaged one)."""
    if denoiser is None:
        from flowrt.denoise.flow import packaged_flow_denoiser
        denoiser = packaged_flow_denoiser()
    recorder = _LastRound(denoiser)

    def make(seed: int) -> Dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        parts = [crop_groups(random_crop(photos, rng, crop), tasks[i % len(tasks)], keep, rng, recorder)
                 for i in range(crops)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    write_seeded(out, first_seed, shards, make, FINAL_PILOT)


def main(argv=None) -> None:
    ap = shard_arguments(__doc__.splitlines()[0], shards=60, crops=6, crop=126, keep=60)   # crop: divisible by 2 and 3
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma list of " + ",".join(TASKS))
    args = ap.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        ap.error(f"--tasks takes {', '.join(TASKS)}; not {', '.join(unknown) or 'nothing'}")
    if any(args.crop % TASKS[t].scale for t in tasks):
        ap.error("--crop must be divisible by every task's scale")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    photos = read_photos(args.data, args.crop)
    log.info("%d photos", len(photos))
    write_shards(photos, Path(args.out), args.first_seed, args.shards, args.crops, args.crop, args.keep, tasks)


if __name__ == "__main__":
    main()
