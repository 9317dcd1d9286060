"""The flow denoiser into a model folder: fitted tables -> ``denoiser.onnx``, verified, in the manifest.

A fit whose shards had the first stage's estimates as pilots (``group_data --pilot-model``: its
meta names that graph's sha256) is the second stage: it becomes ``denoiser_refine.onnx`` (manifest
section ``denoiser_refine``), and only in a folder whose ``denoiser.onnx`` is that very graph,
since the second stage's tables are only right after the first stage they were fitted behind.
Re-exporting the first stage removes a second stage fitted behind an earlier one. A fit of the
splitting's last rounds (``flowrt.train.split_data``: pilot ``FINAL_PILOT``) is the final stage,
``denoiser_final.onnx`` (section ``denoiser_final``), in a folder that has a first stage; it is
kept when the first stage changes, since its rounds' inputs come from the data steps and the
Wiener passes, which the first stage touches only through the splitting's first estimate.

``add_denoiser(fit, folder)`` builds the group flow (``flowrt.prior.group_flow.GroupFlow``) from a
fit (``flowrt.train.group_fit``'s ``group_flow.npz``), exports it as one graph

    (y, p (N, G, 64) float32, counts (N,) int64, channel (N,) int64, sigma (N,) float32)
        -> (x_hat (N, G, 64), group_weight (N,), nll (N,))

with the tables as float16 initialisers and the axes in the graph's metadata, and verifies it:
ONNX Runtime's x_hat against Tweedie's formula y + sigma^2 d/dy log p computed by torch autograd in
float64, its nll against -log p, and the runtime's numba kernel (``flowrt.denoise.flow``) against
ONNX Runtime, on groups drawn like real ones. Only then is the graph moved into the folder and
the manifest rewritten with its hash and the verification figures (``denoiser`` section).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict

import numpy as np

from flowrt.errors import ModelError
from flowrt.prior.folders import DENOISER_ONNX, FINAL_ONNX, FINAL_PILOT, REFINE_ONNX, read_manifest, sha256_file

from .manifest import write_manifest

TOLERANCE = 1e-4   # max |x_hat error| / sigma and relative nll error the verification accepts
NAMES_IN = ["y", "p", "counts", "channel", "sigma"]
NAMES_OUT = ["x_hat", "group_weight", "nll"]


def load_fit(path: Path):
    """The GroupFlow of a fit file (float32 tables rounded to float16, as exported)."""
    import torch

    from flowrt.prior.group_flow import GroupFlow, TableConfig
    try:
        d = np.load(path)
        meta = json.loads(str(d["meta"]))
        cfg = TableConfig(**meta["config"])
        gain, weight = (torch.from_numpy(d[k].astype(np.float16).astype(np.float32)) for k in ("gain", "weight"))
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"{path}: not a group-flow fit ({type(exc).__name__}: {exc})") from None
    return GroupFlow(cfg, gain, weight).eval(), meta


def probe_groups(model, n: int = 96, seed: int = 0):
    """Groups like real ones: clean coefficients with decaying spectra, noisy y, pilot p near the
    clean ones, every group size and channel, sigma from 2 to 70 (0-255 scale)."""
    import torch
    gen = np.random.default_rng(seed)
    g = model.cfg.group
    sigma = gen.uniform(2, 70, n) / 255.0
    scale = 0.5 / (1.0 + np.arange(64))[None, None, :] * gen.lognormal(0, 1, (n, 1, 1))
    x = gen.standard_normal((n, g, 64)) * scale
    y = x + sigma[:, None, None] * gen.standard_normal(x.shape)
    p = x + 0.3 * sigma[:, None, None] * gen.standard_normal(x.shape)
    counts = 2 ** gen.integers(0, int(np.log2(g)) + 1, n)
    rows = np.arange(g)[None, :, None] < counts[:, None, None]
    as_t = lambda a, dt: torch.from_numpy(np.ascontiguousarray(a)).to(dt)  # noqa: E731
    return (as_t(y * rows, torch.float32), as_t(p * rows, torch.float32), as_t(counts, torch.int64),
            as_t(gen.integers(0, 3, n), torch.int64), as_t(sigma, torch.float32))


def export_graph(model, meta: Dict[str, Any], path: Path, opset: int = 17) -> None:
    """torch -> ONNX (the TorchScript exporter: dynamic N; tables as initialisers)."""
    import onnx
    import torch
    example = probe_groups(model, 4)
    torch.onnx.export(model, example, str(path), input_names=NAMES_IN, output_names=NAMES_OUT,
                      dynamic_axes={k: {0: "groups"} for k in NAMES_IN + NAMES_OUT}, opset_version=opset,
                      dynamo=False, do_constant_folding=False)  # folding would store float32 tables
    from flowrt.train.group_fit import axes_of
    graph = onnx.load(str(path))
    axes = axes_of(model.cfg)
    for key, value in (("axes", ",".join(repr(float(a)) for a in axes)), ("fit", json.dumps(meta))):
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(path))


def verify_graph(model, path: Path) -> Dict[str, float]:
    """Figures of the checks in the module docstring; ModelError when one fails."""
    import onnxruntime as ort
    import torch

    from flowrt.denoise.flow import GroupTables
    y, p, counts, channel, sigma = probe_groups(model)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x_ort, w_ort, nll_ort = session.run(None, dict(zip(NAMES_IN, (t.numpy() for t in (y, p, counts, channel, sigma)))))
    exact = model.double()
    y64 = y.double().requires_grad_(True)
    log_p = exact.log_prob(y64, p.double(), counts, channel, sigma.double())
    score, = torch.autograd.grad(log_p.sum(), y64)
    rows = (torch.arange(y.shape[1])[None, :, None] < counts[:, None, None]).double()
    tweedie = ((y64 + sigma.double()[:, None, None] ** 2 * score) * rows).detach().numpy()
    model.float()
    s = sigma.numpy()[:, None, None]
    figures = {
        "tweedie_max_error_over_sigma": float((np.abs(x_ort - tweedie) / s).max()),
        "nll_max_relative_error": float(np.abs(nll_ort + log_p.detach().numpy()).max() / np.abs(nll_ort).max()),
    }
    tables = GroupTables.from_graph(path)
    worst = 0.0
    for c in range(3):
        for sg in np.unique(s):
            pick = (channel.numpy() == c) & (sigma.numpy() == sg)
            if pick.any():
                x_nb, _ = tables.filter(y.numpy()[pick], p.numpy()[pick], counts.numpy()[pick].astype(np.int32), c, float(sg))
                worst = max(worst, float(np.abs(x_nb - x_ort[pick]).max() / sg))
    figures["kernel_max_error_over_sigma"] = worst
    bad = {k: v for k, v in figures.items() if not v <= TOLERANCE}
    if bad:
        raise ModelError(f"{path.name} failed verification: {bad} (tolerance {TOLERANCE})")
    return figures


def stage_of(meta: Dict[str, Any], folder: Path, manifest: Dict[str, Any]) -> tuple:
    """(graph name, manifest section) for a fit: the first stage, or the second when its pilots were
    a first stage's estimates, checked to be the folder's ``denoiser.onnx`` (ModelError otherwise)."""
    wanted = meta.get("pilot_graph") or ""
    if not wanted:
        return DENOISER_ONNX, "denoiser"
    if wanted == FINAL_PILOT:
        if DENOISER_ONNX not in manifest["files"]:
            raise ModelError(f"this fit is a final stage, run after the flow denoiser's splitting, but {folder} "
                             f"has no flow denoiser ({DENOISER_ONNX}): export that first")
        return FINAL_ONNX, "denoiser_final"
    found = manifest["files"].get(DENOISER_ONNX, {}).get("sha256")
    if found != wanted:
        raise ModelError(f"this fit is a second stage, fitted behind the first stage {wanted[:12]}, but "
                         f"{folder} holds {'no first stage' if found is None else found[:12]}: export "
                         f"that first stage there first, or make new shards with --pilot-model {folder}")
    return REFINE_ONNX, "denoiser_refine"


def add_denoiser(fit: Path, folder: Path) -> Dict[str, Any]:
    """Export, verify and publish ``folder/denoiser.onnx`` (or ``denoiser_refine.onnx``, see the
    module docstring) from ``fit``; returns the manifest's section for it. The folder must hold a
    verified prior (its manifest is extended)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    model, meta = load_fit(Path(fit))
    name, section = stage_of(meta, folder, manifest)
    fd, staged = tempfile.mkstemp(prefix=".denoiser-", suffix=".onnx", dir=folder)
    os.close(fd)
    try:
        export_graph(model, meta, Path(staged))
        os.chmod(staged, 0o644)   # it ships as package data
        figures = verify_graph(model, Path(staged))
        os.replace(staged, folder / name)
    finally:
        if os.path.exists(staged):
            os.unlink(staged)
    path = folder / name
    previous = manifest["files"].get(name, {}).get("sha256")
    manifest["files"][name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest[section] = {
        "graph": name, "kind": "group flow (flowrt.prior.group_flow), Tweedie estimate",
        "inputs": NAMES_IN, "outputs": NAMES_OUT, "table_config": meta["config"], "ridge": meta["ridge"],
        "shards": len(meta["shards"]), "target": meta.get("target") or "clean",
        "verification": dict(figures, tolerance=TOLERANCE, passed=True),
    }
    if section == "denoiser_refine":
        manifest[section]["pilot_graph"] = meta["pilot_graph"]
    elif previous != manifest["files"][name]["sha256"] and REFINE_ONNX in manifest["files"]:
        # a second stage fitted behind the replaced first stage would now meet pilots it never saw
        del manifest["files"][REFINE_ONNX]
        manifest.pop("denoiser_refine", None)
        (folder / REFINE_ONNX).unlink(missing_ok=True)
    if "tune" in meta:
        manifest[section]["tune"] = meta["tune"]
    write_manifest(folder, manifest)
    return manifest[section]


def main(argv=None) -> None:
    """python -m flowrt.export.denoiser_export FIT FOLDER: add a verified denoiser.onnx to FOLDER."""
    import argparse
    import sys
    ap = argparse.ArgumentParser(description="Export a group-flow fit into a model folder as denoiser.onnx "
                                             "(or denoiser_refine.onnx for a second stage's fit), verified.")
    ap.add_argument("fit", help="group_flow.npz from python -m flowrt.train.group_fit")
    ap.add_argument("folder", help="an exported prior's folder (its manifest gains the denoiser)")
    args = ap.parse_args(argv)
    try:
        section = add_denoiser(Path(args.fit), Path(args.folder))
    except ModelError as exc:
        sys.exit(f"error: {exc}")
    print(json.dumps(section["verification"]))


if __name__ == "__main__":
    main()
