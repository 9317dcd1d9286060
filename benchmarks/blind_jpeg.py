"""Blind JPEG detection: PNG copies of JPEGs found and restored with no flags (issue 24, point 6).

For every photo of the detection folders: its clean PNG (whole, and the centre crop) must read as
clean; PNG copies of the crop's Pillow JPEG at each quality must be found, with the quality
estimated; PNG copies of the multi chain (x1/2, noise 8, JPEG 50) must be found and their noise
estimated. For the photos of the restore folders, at the restore qualities, three restores with
the packaged prior and no flags: the original JPEG file (its own tables), its PNG copy (blind),
and the copy with ``--jpeg Q`` given when the detected quality differs from Q (when it is the
same, that restore is the blind one by construction). PSNR against the clean crop.
Writes blind_jpeg.json and blind_jpeg.md to --out.

    nice -n 10 python benchmarks/blind_jpeg.py
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import psnr  # noqa: E402
from protocol import TASKS, degrade, encode_jpeg, list_photos, load_photo, seed_for  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "blind_jpeg"


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def evidence_row(pixels: np.ndarray) -> dict:
    from flowrt.pipeline.jpeg_detect import detect_jpeg
    e = detect_jpeg(pixels / 255.0)
    return {"detected": e.detected, "quality": e.quality, "fit": round(e.fit, 3), "off_grid": round(e.off_grid, 3)}


def multi_noise(pixels: np.ndarray) -> float:
    """The plan's noise estimate for a PNG copy (what --sigma auto would use), 0-255."""
    from flowrt.io.image_file import read_image
    from flowrt.pipeline.options import RestoreOptions
    from flowrt.pipeline.plan import plan_restoration
    from flowrt.pipeline.source import from_image
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "multi.png"
        Image.fromarray(pixels).save(path)
        plan = plan_restoration(from_image(read_image(str(path)), str(path)), RestoreOptions(scale=2))
    return {"sigma": plan.sigma, "sigma_source": plan.sigma_source, "jpeg": plan.jpeg_source}


def detect_photo(photo: Path, crop: int, qualities) -> dict:
    clean = load_photo(photo, crop)
    row = {"photo": f"{photo.parent.name}/{photo.name}", "clean_whole": evidence_row(load_photo(photo)),
           "clean_crop": evidence_row(clean), "copies": {}}
    for q in qualities:
        row["copies"][str(q)] = evidence_row(decoded(encode_jpeg(clean, q)))
    _, multi = degrade(clean, TASKS["multi"], seed_for("multi", photo.name))
    row["multi"] = {**evidence_row(decoded(multi)), **multi_noise(decoded(multi))}
    return row


def restore_photo(photo: Path, crop: int, quality: int, prior, work: Path) -> dict:
    import flowrt
    clean = load_photo(photo, crop)
    data = encode_jpeg(clean, quality)
    jpg, png = work / f"{photo.stem}_q{quality}.jpg", work / f"{photo.stem}_q{quality}.png"
    jpg.write_bytes(data)
    Image.fromarray(decoded(data)).save(png)
    row = {"photo": f"{photo.parent.name}/{photo.name}", "quality": quality, "input": psnr(clean, decoded(data))}
    for key, source, fields in (("jpeg_file", jpg, {}), ("png_blind", png, {})):
        t0 = time.perf_counter()
        result = flowrt.restore(str(source), prior=prior, **fields)
        row[key] = psnr(clean, result.image)
        row[key + "_seconds"] = time.perf_counter() - t0
        row[key + "_plan"] = result.plan.describe()
    detected = result.plan.jpeg.quality if result.plan.jpeg is not None else None
    row["detected_quality"] = detected
    if detected != quality:
        row["png_given"] = psnr(clean, flowrt.restore(str(png), prior=prior, jpeg=quality).image)
    else:
        row["png_given"] = row["png_blind"]
    return row


def markdown(report: dict) -> str:
    qualities = report["qualities"]
    lines = [f"# Blind JPEG detection on PNG copies ({report['crop']}x{report['crop']} centre crops)", "",
             "## Detection", "", "| photo | clean whole | clean crop | " + " | ".join(f"q{q}" for q in qualities)
             + " | multi copy: found, noise |", "| --- " * (4 + len(qualities)) + "|"]

    def cell(e):
        return f"{'**found** ' if e['detected'] else 'clean '}{e['quality']} ({e['fit']:.2f}/{e['off_grid']:.2f})"
    for r in report["detection"]:
        m = r["multi"]
        sigma = "none" if m["sigma"] is None else f"{m['sigma']:.1f}"
        lines.append(f"| {r['photo']} | {cell(r['clean_whole'])} | {cell(r['clean_crop'])} | "
                     + " | ".join(cell(r["copies"][str(q)]) for q in qualities)
                     + f" | {'found ' + str(m['quality']) if m['detected'] else 'missed'}, sigma {sigma} |")
    s = report["summary"]
    lines += ["", "A cell: verdict, best IJG quality (fit on the 8x8 grid / fit off it).", "",
              f"- clean PNGs called JPEG (false positives): {s['false_positives']} of {s['clean_images']}",
              f"- copies found: {s['found']} of {s['copies']}; quality exact on {s['exact']}, "
              f"within 3 on {s['within3']}; mean |error| {s['mean_abs_quality_error']:.2f}",
              f"- multi-chain copies found: {s['multi_found']} of {s['multi']}", ""]
    if report["restores"]:
        lines += ["## No-flags restore of the PNG copy against the JPEG file", "",
                  "| photo | q | detected | input | JPEG file | PNG copy, no flags | PNG copy, --jpeg q | copy - file |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in report["restores"]:
            lines.append(f"| {r['photo']} | {r['quality']} | {r['detected_quality']} | {r['input']:.2f} | "
                         f"{r['jpeg_file']:.2f} | {r['png_blind']:.2f} | {r['png_given']:.2f} | "
                         f"{r['png_blind'] - r['jpeg_file']:+.3f} |")
        lines += ["", f"Largest shortfall of the blind copy against the file: {s['worst_gap']:+.3f} dB "
                  f"(target: within 0.2 dB); mean {s['mean_gap']:+.3f} dB.", ""]
    lines += [f"Command: `{report['command']}`", ""]
    return "\n".join(lines)


def summarise(detection: list, restores: list, qualities) -> dict:
    clean = [e for r in detection for e in (r["clean_whole"], r["clean_crop"])]
    copies = [(q, r["copies"][str(q)]) for r in detection for q in qualities]
    errors = [abs(e["quality"] - q) for q, e in copies if e["detected"]]
    gaps = [r["png_blind"] - r["jpeg_file"] for r in restores]
    return {"clean_images": len(clean), "false_positives": sum(e["detected"] for e in clean),
            "copies": len(copies), "found": len(errors), "exact": sum(err == 0 for err in errors),
            "within3": sum(err <= 3 for err in errors),
            "mean_abs_quality_error": float(np.mean(errors)) if errors else float("nan"),
            "multi": len(detection), "multi_found": sum(r["multi"]["detected"] for r in detection),
            "worst_gap": min(gaps) if gaps else None, "mean_gap": float(np.mean(gaps)) if gaps else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detect-data", nargs="+", default=["../shared/data/val", "../shared/data/val-photos"])
    ap.add_argument("--restore-data", nargs="*", default=["../shared/data/val-photos"])
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--qualities", type=int, nargs="+", default=[10, 20, 40, 70, 90])
    ap.add_argument("--restore-qualities", type=int, nargs="+", default=[10, 20, 40, 70])
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    detection = []
    for folder in args.detect_data:
        for photo in list_photos(Path(folder)):
            detection.append(detect_photo(photo, args.crop, args.qualities))
            print(photo.name, {q: e["quality"] if e["detected"] else None
                               for q, e in detection[-1]["copies"].items()}, flush=True)
    restores = []
    if args.restore_data:
        import flowrt
        prior = flowrt.load_prior()
        with tempfile.TemporaryDirectory() as tmp:
            for folder in args.restore_data:
                for photo in list_photos(Path(folder)):
                    for q in args.restore_qualities:
                        restores.append(restore_photo(photo, args.crop, q, prior, Path(tmp)))
                        r = restores[-1]
                        print(f"{photo.name} q{q}: file {r['jpeg_file']:.2f}, copy {r['png_blind']:.2f} dB", flush=True)
    report = {"crop": args.crop, "qualities": args.qualities, "detection": detection, "restores": restores,
              "summary": summarise(detection, restores, args.qualities),
              "command": "python benchmarks/blind_jpeg.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "blind_jpeg.json").write_text(json.dumps(report, indent=2))
    (out / "blind_jpeg.md").write_text(markdown(report))
    print(json.dumps(report["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
