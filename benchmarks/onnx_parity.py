"""Does ``flowrt score`` (ONNX Runtime) give the torch model's bits/dim on whole photos?

For every image in --images: the bits/dim ``flowrt score`` prints (Prior on the exported graphs,
uniform dequantisation with seed 0, centre crop to the size rule) against the same dequantised
pixels scored by the folder's model.pt in torch float32 and float64. Target (issue 3): within
0.01 bits/dim. Writes benchmarks/results/onnx_parity.json and .md. Usage:
    python benchmarks/onnx_parity.py --model DIR [--images ../shared/data/val]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
from pathlib import Path

import torch

from flowrt.io.formats import IMAGE_SUFFIXES
from flowrt.prior.folders import load_torch_prior, read_manifest
from flowrt.prior.onnx_backend import Prior
from flowrt.prior.scoring import centre_crop_to_multiple, dequantize, read_rgb8, score_rgb8

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TARGET_BPD = 0.01


def score_one(path: Path, prior: Prior, f32, f64) -> dict:
    rgb8, _ = read_rgb8(str(path))
    ort_bpd = score_rgb8(prior, rgb8).bits_per_dim
    x = torch.from_numpy(dequantize(centre_crop_to_multiple(rgb8, prior.multiple), "uniform", 0))
    with torch.no_grad():
        torch32 = float(f32.bits_per_dim(x))
        torch64 = float(f64.bits_per_dim(x.double()))
    return {"image": path.name, "size": f"{x.shape[2]}x{x.shape[3]}", "ort_bpd": round(ort_bpd, 6),
            "torch32_bpd": round(torch32, 6), "torch64_bpd": round(torch64, 6),
            "ort_minus_torch32": float(f"{ort_bpd - torch32:.3g}"), "ort_minus_torch64": float(f"{ort_bpd - torch64:.3g}")}


def markdown(result: dict) -> str:
    lines = [f"# flowrt score (ONNX Runtime) against torch, bits/dim on {result['images']}", "",
             f"Model: {result['model']} (manifest sha256 of forward.onnx {result['forward_sha256'][:12]}); "
             f"uniform dequantisation, seed 0; providers {result['providers']}.", "",
             "| image | scored size | ORT bpd | torch float32 bpd | torch float64 bpd | ORT - torch32 | ORT - torch64 |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["rows"]:
        lines.append(f"| {r['image']} | {r['size']} | {r['ort_bpd']:.4f} | {r['torch32_bpd']:.4f} | {r['torch64_bpd']:.4f} "
                     f"| {r['ort_minus_torch32']:.2g} | {r['ort_minus_torch64']:.2g} |")
    lines += ["", f"Largest |ORT - torch float64|: {result['max_abs_diff_bpd']:.2g} bits/dim "
              f"(target {TARGET_BPD}: {'met' if result['target_met'] else 'NOT met'}).",
              f"Command: `python benchmarks/onnx_parity.py --model {result['model']} --images {result['images']}`"]
    if result["note"]:
        lines += ["", result["note"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="exported prior folder")
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "val"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--note", default="", help="what the model is, for the table")
    parser.add_argument("--out", default=str(RESULTS / "onnx_parity"), help="output path without suffix")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    prior = Prior(args.model, threads=args.threads)
    f32 = load_torch_prior(args.model)
    f64 = copy.deepcopy(f32).double().freeze()
    paths = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    rows = [score_one(p, prior, f32, f64) for p in paths]
    worst = max(abs(r["ort_minus_torch64"]) for r in rows)
    result = {"model": args.model, "images": args.images, "providers": prior.providers,
              "forward_sha256": read_manifest(args.model)["files"]["forward.onnx"]["sha256"],
              "note": args.note, "rows": rows, "max_abs_diff_bpd": worst, "target_bpd": TARGET_BPD, "target_met": worst <= TARGET_BPD}
    for suffix, text in ((".json", json.dumps(result, indent=2) + "\n"), (".md", markdown(result))):
        path = Path(args.out + suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_name(f".{path.name}.tmp").write_text(text)
        os.replace(path.with_name(f".{path.name}.tmp"), path)
    print(markdown(result))


if __name__ == "__main__":
    main()
