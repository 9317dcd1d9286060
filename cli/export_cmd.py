"""flowrt export: checkpoint -> verified ONNX prior folder (or re-verify one with --verify)."""
from __future__ import annotations

import click

from .common import report_errors, setup_logging


@click.command("export")
@click.argument("checkpoint", required=False, type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False),
              help="Folder to write (default: beside the checkpoint, NAME-onnx).")
@click.option("--opset", type=click.IntRange(13, 20), default=17, show_default=True, help="ONNX opset.")
@click.option("--fp16", is_flag=True, help="float16 weights and activations, float32 inputs and outputs; "
                                           "written only if it passes verification.")
@click.option("--exporter", type=click.Choice(["torchscript", "dynamo"]), default="torchscript", show_default=True,
              help="torch.onnx exporter.")
@click.option("--gradients/--no-gradients", default=True, show_default=True,
              help="Also write and verify prior_grad.onnx, the gradient graph the fast ort engine needs "
                   "(`restore --engine ort`, and `auto` on the CPU); without it the prior runs on torch.")
@click.option("--verify", "verify_dir", type=click.Path(file_okay=False),
              help="Re-verify an exported folder against its model.pt instead of exporting.")
@click.option("-v", "--verbose", count=True, help="Print every verification figure.")
@report_errors
def export(checkpoint, out_dir, opset, fp16, exporter, gradients, verify_dir, verbose):
    """Export CHECKPOINT's flow to forward.onnx, inverse.onnx and (unless --no-gradients) the gradient
    graph prior_grad.onnx, verify them all, write a manifest."""
    setup_logging(verbose)
    from flowrt.errors import InputError
    from flowrt.export.pipeline import ExportError, export_checkpoint, reverify
    from flowrt.prior.folders import PRIOR_GRAD_ONNX

    if (checkpoint is None) == (verify_dir is None):
        raise InputError("give either a CHECKPOINT to export or --verify DIR, not both or neither")
    try:
        if verify_dir is not None:
            report = reverify(verify_dir)
            summary = f"verified {verify_dir}"
        else:
            folder, report = export_checkpoint(checkpoint, out_dir, opset=opset, fp16=fp16, exporter=exporter,
                                               gradients=(PRIOR_GRAD_ONNX,) if gradients else False)
            summary = f"exported {checkpoint} -> {folder}"
    except ExportError as exc:
        if exc.report is not None:
            click.echo("\n".join(exc.report.lines()), err=True)
        raise
    if verbose:
        click.echo("\n".join(report.lines()))
    click.echo(f"{summary} ({report.precision}, {len(report.checks)} checks passed on {report.providers[0]})")
