"""Training groups for the learned group filter: clean photos, fresh noise, the runtime's grouping.

A *shard* is one ``.npz`` file of channel-groups drawn from random crops: each crop gets a noise
std sigma (uniform on ``sigma_255``, 0-255 scale), is noised, rounded and clipped to 8 bits as a
real file is, and grouped by ``flowrt.denoise.grouped.group_planes``, the very code a restore runs;
a random subset of its groups is kept, with the clean image's groups at the same positions.

Arrays of a shard (N channel-groups, G = GROUP_WIENER members, 64 DCT coefficients, [0, 1] units):
``y``, ``p``, ``x`` float32 (N, G, 64): noisy, pilot and clean 3-D coefficients, zero from the
count on; ``count`` int32 (N,); ``channel`` int8 (N,) (0 luma-like, 1-2 colour opponents);
``sigma`` float32 (N,) in [0, 1] units; ``clipped`` int8 (N,): 1 where ``x`` holds the groups of
the clipped mean f(clean) (``flowrt.numeric.clipping``: the mean of the noisy 8-bit file, which the
runtime maps back to the clean image pixel by pixel), 0 where it holds the clean image's;
``pilot_graph`` str (a 0-d array): '' where the pilot is the hard-thresholding pass (the first
stage's groups), else the sha256 of the ``denoiser.onnx`` whose flow estimate is the pilot (the
second stage's groups, ``--pilot-model``; the export checks the folder's first stage is that graph). Shards are
written atomically and named by their seed, so an interrupted run resumes by skipping the shards
already there.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from flowrt.denoise import grouped as G
from flowrt.denoise import kernels as K
from flowrt.denoise.grouped import group_planes
from flowrt.io.atomic import atomic_file
from flowrt.numeric.clipping import clipped_mean

log = logging.getLogger("flowrt.train.group_data")


def read_photos(folders: Sequence[str], min_side: int) -> List[np.ndarray]:
    """Every PNG/JPEG/TIFF photo under ``folders`` as uint8 (H, W, 3); smaller ones skipped."""
    from .data import _read_rgb8, list_images
    photos = []
    for folder in folders:
        for path in list_images(folder):
            arr = _read_rgb8(path)
            if min(arr.shape[:2]) >= min_side:
                photos.append(arr)
    if not photos:
        raise SystemExit(f"no photos of at least {min_side} px in {', '.join(folders)}")
    return photos


def noisy_copy(clean: np.ndarray, sigma_255: float, rng: np.random.Generator) -> np.ndarray:
    """clean float32 (H, W, 3) in [0, 1] plus N(0, sigma^2), rounded and clipped to 8 bits."""
    noisy = clean * 255.0 + sigma_255 * rng.standard_normal(clean.shape)
    return (np.clip(np.round(noisy), 0, 255) / 255.0).astype(np.float32)


def crop_groups(clean: np.ndarray, sigma_255: float, keep: int, rng: np.random.Generator,
                pilot_filter=None, clipped_target: bool = True) -> Dict[str, np.ndarray]:
    """The channel-groups of ``keep`` random references of one crop (float32 (H, W, 3) in [0, 1]).
    pilot_filter: a ``grouped.GroupFilter`` whose estimate is the pilot (a second stage's groups)
    instead of the hard-thresholding pass. clipped_target: the target is the clipped mean of the
    clean crop, not the crop (see the module docstring)."""
    noisy = noisy_copy(clean, sigma_255, rng)
    sigma = sigma_255 / 255.0
    pilot = None
    if pilot_filter is not None:
        pilot = G._planes(G.denoise_rgb(noisy, sigma, group_filter=pilot_filter), False)
    grouping = group_planes(G._planes(noisy, False), sigma, pilot)
    target = clipped_mean(clean, sigma).astype(np.float32) if clipped_target else clean
    return kept_groups(grouping, target, sigma, keep, rng, clipped_target)


def kept_groups(grouping: "G.Grouping", target: np.ndarray, sigma: float, keep: int, rng: np.random.Generator,
                clipped_target: bool) -> Dict[str, np.ndarray]:
    """A shard's arrays (see the module docstring) for ``keep`` random references of ``grouping``:
    its noisy and pilot groups, and ``target``'s (float32 (H, W, 3) in [0, 1]) at the same places;
    ``sigma`` ([0, 1] units) and ``clipped_target`` are recorded per channel-group."""
    d = K.dct_matrix()
    target_coefs = [K.patch_dct(np.ascontiguousarray(p), d) for p in G._planes(target, False)]
    refs = np.sort(rng.choice(len(grouping.counts), size=min(keep, len(grouping.counts)), replace=False))
    ys, xs, counts = grouping.ys[refs], grouping.xs[refs], grouping.counts[refs]
    parts = {"y": [], "p": [], "x": [], "count": [], "channel": []}
    n = len(refs)
    for channel in range(3):
        for key, coefs in (("y", grouping.coefs), ("p", grouping.pilot_coefs), ("x", target_coefs)):
            parts[key].append(K.gather_groups(coefs[channel], ys, xs, counts, 0, n))
        parts["count"].append(counts.astype(np.int32))
        parts["channel"].append(np.full(n, channel, np.int8))
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["sigma"] = np.full(len(out["count"]), sigma, np.float32)
    out["clipped"] = np.full(len(out["count"]), int(clipped_target), np.int8)
    return out


def random_crop(photos: List[np.ndarray], rng: np.random.Generator, side: int) -> np.ndarray:
    """A random side x side crop of a random photo, flipped left-right half the time: float32 (side,
    side, 3) in [0, 1]."""
    photo = photos[int(rng.integers(len(photos)))]
    top = int(rng.integers(photo.shape[0] - side + 1))
    left = int(rng.integers(photo.shape[1] - side + 1))
    clean = photo[top:top + side, left:left + side].astype(np.float32) / 255.0
    return np.ascontiguousarray(clean[:, ::-1] if rng.random() < 0.5 else clean)


def make_shard(photos: List[np.ndarray], seed: int, crops: int, crop: int, keep: int,
               sigma_255: Tuple[float, float], pilot_filter=None, clipped_target: bool = True) -> Dict[str, np.ndarray]:
    """One shard: ``crops`` random crops (random photo, position, flip), each its own sigma."""
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(crops):
        clean = random_crop(photos, rng, crop)
        parts.append(crop_groups(clean, float(rng.uniform(*sigma_255)), keep, rng, pilot_filter, clipped_target))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def write_shards(photos, out: Path, first_seed: int, shards: int, pilot_graph: str = "", **kw) -> None:
    """Write shards ``first_seed .. first_seed + shards - 1`` into ``out``, skipping those present;
    ``pilot_graph``: see the module docstring."""
    write_seeded(out, first_seed, shards, lambda seed: make_shard(photos, seed, **kw), pilot_graph)


def write_seeded(out: Path, first_seed: int, shards: int, make, pilot_graph: str) -> None:
    """Shards ``first_seed ..`` into ``out`` as ``make(seed)`` gives them (dicts of arrays), each
    written atomically with its ``pilot_graph`` and named by its seed; those present are skipped, so
    an interrupted run resumes."""
    out.mkdir(parents=True, exist_ok=True)
    for seed in range(first_seed, first_seed + shards):
        path = out / f"shard-{seed:05d}.npz"
        if path.exists():
            continue
        started = time.time()
        shard = make(seed)
        shard["pilot_graph"] = np.array(pilot_graph)
        with atomic_file(path) as fh:
            np.savez(fh, **shard)
        log.info("%s: %d channel-groups in %.1f s", path.name, len(shard["count"]), time.time() - started)


def load_shards(folder: Path, limit: int = 0) -> Dict[str, np.ndarray]:
    """Concatenate the shards of ``folder`` (sorted by name; the first ``limit`` when > 0)."""
    paths = sorted(Path(folder).glob("shard-*.npz"))
    if limit:
        paths = paths[:limit]
    if not paths:
        raise SystemExit(f"no shards in {folder}")
    parts = [dict(np.load(p)) for p in paths]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if np.ndim(parts[0][k])}


def first_stage(folder: Path):
    """(group filter, sha256 of its graph): the first stage of the flow denoiser in model folder
    ``folder``, whose estimate is a second stage's pilot."""
    from flowrt.denoise.flow import GroupTables
    from flowrt.prior.folders import DENOISER_ONNX, open_model_dir
    folder, manifest = open_model_dir(folder, [DENOISER_ONNX])   # hash-checked against its manifest
    return GroupTables.from_graph(folder / DENOISER_ONNX).filter_grouping, manifest["files"][DENOISER_ONNX]["sha256"]


def shard_arguments(description: str, shards: int, crops: int, crop: int, keep: int) -> argparse.ArgumentParser:
    """The options every shard writer takes (photos, output, seeds, crops, groups kept), with its defaults."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--data", nargs="+", required=True, help="folders of clean photos")
    ap.add_argument("--out", required=True, help="folder of shards (created; existing shards are kept)")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--shards", type=int, default=shards)
    ap.add_argument("--crops", type=int, default=crops, help="crops per shard")
    ap.add_argument("--crop", type=int, default=crop, help="crop side in pixels")
    ap.add_argument("--keep", type=int, default=keep, help="groups kept per crop")
    return ap


def main(argv=None) -> None:
    ap = shard_arguments(__doc__.splitlines()[0], shards=20, crops=40, crop=96, keep=48)
    ap.add_argument("--sigma", type=float, nargs=2, default=(2.0, 60.0), help="noise std range, 0-255")
    ap.add_argument("--pilot-model", help="a model folder whose flow denoiser makes the pilot (second-stage groups)")
    ap.add_argument("--target", choices=("clipped-mean", "clean"), default="clipped-mean",
                    help="what the groups' x holds: the clipped mean of the clean crop (the runtime undoes the "
                         "clipping pixel by pixel), or the clean crop itself (the tables then learn the clipping)")
    args = ap.parse_args(argv)
    pilot_filter, pilot_graph = None, ""
    if args.pilot_model:
        pilot_filter, pilot_graph = first_stage(Path(args.pilot_model))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    photos = read_photos(args.data, args.crop)
    log.info("%d photos", len(photos))
    write_shards(photos, Path(args.out), args.first_seed, args.shards, crops=args.crops, crop=args.crop,
                 keep=args.keep, sigma_255=tuple(args.sigma), pilot_filter=pilot_filter,
                 clipped_target=args.target == "clipped-mean", pilot_graph=pilot_graph)


if __name__ == "__main__":
    main()
