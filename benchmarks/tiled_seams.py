"""Are tile borders visible? Tiled against whole-image restoration of noisy val photos.

Each photo of --val gets Gaussian noise (sigma 25, 0-255 scale, seeded) and is restored by a
non-local stand-in restorer, scikit-image's ``denoise_tv_chambolle`` (weight 0.08): once whole, and
tile by tile through ``restore_tiled`` with the given --tile/--overlap (and once with overlap 0, no
blending, to show what a seam scores). Reported per photo: ``seam_score`` (~1 = no seams) of each
output, PSNR against the clean photo, and the largest pixel difference tiled vs whole.
With ``--restore cli`` the restorer is the real one: the noisy photo is saved as PNG and restored by
``flowrt restore --sigma 25`` once with ``--tile 0`` (whole) and once with ``--tile/--overlap`` (and,
with ``--hard``, once more with overlap 0), with the prior folder --model (default: the packaged one)
and --iters (default: the CLI's). Each photo's result is written as soon as it is measured.
Writes benchmarks/results/tiled_seams.json and .md (``_cli`` appended for --restore cli). Usage:
    python benchmarks/tiled_seams.py [--val DIR] [--photos 3] [--tile 256] [--overlap 32]
                                     [--restore tv|cli] [--model DIR] [--iters N] [--hard]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from flowrt.io.array_stream import ArraySink, ArraySource
from flowrt.tiling.grid import restore_tiled, seam_score

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def tv_restore(tile: np.ndarray, box=None) -> np.ndarray:
    from skimage.restoration import denoise_tv_chambolle
    return denoise_tv_chambolle(tile, weight=0.08, channel_axis=-1).astype(np.float32)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((np.asarray(a, np.float64) - b) ** 2)))


def tiled(noisy: np.ndarray, tile: int, overlap: int) -> np.ndarray:
    sink = ArraySink(noisy.shape)
    restore_tiled(ArraySource(noisy), sink, tv_restore, tile=tile, overlap=overlap)
    return sink.pixels


def noisy_photo(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) float32 (H, W, 3) in [0, 1]: noise sigma 25 (0-255), rounded, seeded."""
    clean = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255
    rng = np.random.default_rng(25)
    noisy = np.clip(np.round(clean * 255 + rng.normal(0, 25, clean.shape)), 0, 255).astype(np.float32) / 255
    return clean, noisy


def measure(path: Path, tile: int, overlap: int) -> dict:
    clean, noisy = noisy_photo(path)
    whole = tv_restore(noisy)
    blended, hard = tiled(noisy, tile, overlap), tiled(noisy, tile, 0)
    return scores(path, clean, noisy, whole, blended, hard, tile, overlap)


def scores(path: Path, clean, noisy, whole, blended, hard, tile: int, overlap: int) -> dict:
    """Seam scores and PSNRs of whole / tiled (/ no-overlap, None: not run) restores of one photo."""
    def if_run(func, *a, **kw):
        return None if hard is None else func(*a, **kw)
    return {"photo": path.name, "size": list(clean.shape[:2]),
            "seam_score": {"clean": seam_score(clean, tile, overlap),
                           "whole": seam_score(whole, tile, overlap),
                           "tiled": seam_score(blended, tile, overlap),
                           "tiled_no_overlap": if_run(seam_score, hard, tile, 0)},
            "seam_vs_whole": {"tiled": seam_score(blended, tile, overlap, reference=whole),
                              "tiled_no_overlap": if_run(seam_score, hard, tile, 0, reference=whole)},
            "psnr": {"noisy": psnr(noisy, clean), "whole": psnr(whole, clean),
                     "tiled": psnr(blended, clean), "tiled_no_overlap": if_run(psnr, hard, clean)},
            "max_abs_tiled_vs_whole": float(np.abs(blended - whole).max()),
            "mean_abs_tiled_vs_whole": float(np.abs(blended - whole).mean())}


def flowrt_restore(src: Path, out: Path, args, *tiling: str) -> float:
    """Run ``flowrt restore --sigma 25`` on src; returns its wall seconds."""
    cmd = [sys.executable, "-m", "flowrt.cli.main", "restore", str(src), "-o", str(out), "--sigma", "25",
           *tiling] + (["--model", args.model] if args.model else []) + \
        (["--iters", str(args.iters)] if args.iters else [])
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return round(time.perf_counter() - start, 1)


def code_fingerprint() -> str:
    """sha256 of the runtime and CLI sources: the restores of one photo must all run the same code
    (others commit to the working tree while a benchmark runs; a solver change between the whole
    and the tiled restore once made them differ by 1 dB)."""
    import hashlib
    digest = hashlib.sha256()
    for path in sorted([*(ROOT / "flowrt").rglob("*.py"), *(ROOT / "cli").glob("*.py")]):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def measure_cli(path: Path, args, scratch: Path, attempts: int = 3) -> dict:
    """``measure_cli_once``, repeated while the code changed under its runs."""
    for _ in range(attempts):
        before = code_fingerprint()
        row = measure_cli_once(path, args, scratch)
        if code_fingerprint() == before:
            row["code"] = before
            return row
        print(f"{path.name}: flowrt's code changed during its restores; measuring again", flush=True)
    sys.exit(f"{path.name}: the code kept changing; no consistent measurement")


def measure_cli_once(path: Path, args, scratch: Path) -> dict:
    """Whole vs tiled restores of one noisy photo by the real ``flowrt restore``."""
    clean, noisy = noisy_photo(path)
    src = scratch / "noisy.png"
    Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(src)
    runs = {"whole": ("--tile", "0"), "tiled": ("--tile", str(args.tile), "--overlap", str(args.overlap))}
    if args.hard:
        runs["tiled_no_overlap"] = ("--tile", str(args.tile), "--overlap", "0")
    outputs, seconds = {}, {}
    for name, tiling in runs.items():
        out = scratch / f"{name}.png"
        seconds[name] = flowrt_restore(src, out, args, *tiling)
        outputs[name] = np.asarray(Image.open(out).convert("RGB"), np.float32) / 255
    row = scores(path, clean, noisy, outputs["whole"], outputs["tiled"], outputs.get("tiled_no_overlap"),
                 args.tile, args.overlap)
    row["seconds"] = seconds
    return row


def _num(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown(report: dict) -> str:
    restorer = ("restored by `flowrt restore` with the flow prior" if report.get("restore") == "cli"
                else "TV-denoised")
    lines = [f"# Seams: tiled (tile {report['tile']}, overlap {report['overlap']}) vs whole, "
             f"{restorer}, val photos (sigma 25)", "",
             "| photo | seam: clean | whole | tiled | no-overlap | tiled / whole | no-overlap / whole | "
             "PSNR whole | PSNR tiled | max abs tiled-whole |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["photos"]:
        s, v, p = r["seam_score"], r["seam_vs_whole"], r["psnr"]
        lines.append(f"| {r['photo']} | {s['clean']:.2f} | {s['whole']:.2f} | {s['tiled']:.2f} | "
                     f"{_num(s['tiled_no_overlap'])} | **{v['tiled']:.3f}** | {_num(v['tiled_no_overlap'])} | "
                     f"{p['whole']:.2f} | {p['tiled']:.2f} | {r['max_abs_tiled_vs_whole']:.4f} |")
    stand_in = (f"Restorer: flowrt restore --sigma 25 (model {report.get('model') or 'packaged default'}, "
                f"iters {report.get('iters') or 'default'}; commit {report.get('commit')}, sources "
                f"{', '.join(sorted({r.get('code', '?') for r in report['photos']}))}); mean |tiled - whole| per photo: "
                + ", ".join(f"{r['mean_abs_tiled_vs_whole'] * 255:.2f}" for r in report["photos"])
                + " levels (0-255); seconds whole / tiled: "
                + ", ".join(f"{r['seconds']['whole']} / {r['seconds']['tiled']}" for r in report["photos"])
                if report.get("restore") == "cli" else
                "The restorer is a stand-in (scikit-image TV), not the flow prior.")
    lines += ["", "seam_score: median squared line-averaged step where tiles meet over elsewhere "
              "(~1 = no seams on texture; a photo's own structure moves it, hence the ratio to the "
              "whole-image restore on the same grid). " + stand_in,
              "", f"Command: `{report['command']}`"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--val", default=str(ROOT.parent / "shared" / "data" / "val"))
    p.add_argument("--photos", type=int, default=3)
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--restore", choices=["tv", "cli"], default="tv")
    p.add_argument("--model", default="", help="cli: exported prior folder (default: the packaged prior)")
    p.add_argument("--iters", type=int, default=0, help="cli: MAP iterations (default: the CLI's)")
    p.add_argument("--hard", action="store_true", help="cli: also restore with overlap 0")
    args = p.parse_args(argv)
    photos = sorted(Path(args.val).glob("*.png"))[:args.photos]
    if not photos:
        sys.exit(f"no PNG photos in {args.val}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    report = {"restore": args.restore, "tile": args.tile, "overlap": args.overlap, "commit": commit,
              "model": args.model or None, "iters": args.iters or None, "photos": [],
              "command": "python benchmarks/tiled_seams.py " + " ".join(argv or sys.argv[1:])}
    if args.restore == "cli":
        import dataclasses

        from flowrt.solve.solver import SolverConfig
        report["solver_defaults"] = dataclasses.asdict(SolverConfig())
    name = "tiled_seams" + ("_cli" if args.restore == "cli" else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="flowrt_seams_") as scratch:
        for path in photos:
            row = measure_cli(path, args, Path(scratch)) if args.restore == "cli" else \
                measure(path, args.tile, args.overlap)
            report["photos"].append(row)
            print(row, flush=True)
            (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n")
            (RESULTS / f"{name}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
