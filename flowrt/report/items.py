"""Gather one page entry from files on disk: the input, the result, their score maps.

Callers (``flowrt compare``, ``flowrt batch --report``) pass what they know about the run as
(label, text) rows; this module only reads images and scores them.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

from flowrt.prior.scoring import read_rgb8
from flowrt.report.page import ReportItem


def load_item(name: str, before_path: str, after_path: str, *, flow=None,
              details: Sequence[Tuple[str, str]] = ()) -> ReportItem:
    """A ReportItem for a before/after pair of image files (8-bit RGB views of them, as ``flowrt score``
    reads them). flow: a torch FlowModel (``flowrt.prior.folders.load_torch_prior``) for the score maps,
    or None for a page without them. The after image's sides must be a whole multiple of the before
    image's (1 for a restore, the factor for super-resolution): InputError otherwise."""
    from flowrt.errors import InputError

    before, _ = read_rgb8(before_path)
    after, _ = read_rgb8(after_path)
    (h, w), (ho, wo) = before.shape[:2], after.shape[:2]
    if ho % h or wo % w or ho // h != wo // w:
        raise InputError(f"{after_path} is {wo}x{ho}, not the size of {before_path} ({w}x{h}) or a whole multiple of it")
    rows = tuple(details)
    if (ho, wo) != (h, w):
        rows += (("scale", f"x{ho // h} (the input is shown enlarged with nearest-neighbour)"),)
    if flow is None:
        return ReportItem(name, before, after, rows)
    before_map, after_map = _score(flow, before), _score(flow, after)
    return ReportItem(name, before, after, rows, before_map[0], after_map[0], before_map[1], after_map[1])


def score_note() -> str:
    """The page's line saying how its bits/dim were scored (``_score``'s mode, ``flowrt score``'s default)."""
    from flowrt.prior.density_map import DEFAULT_TILE
    from flowrt.prior.scoring import mode_words
    return (f"Bits/dim scored as flowrt score scores them ({mode_words()}, centre crop to the prior's size "
            f"rule); an image over {DEFAULT_TILE} px a side is scored in {DEFAULT_TILE}-px tiles, whose mean "
            "can differ slightly from flowrt score's whole-image figure.")


def _score(flow, rgb8) -> Tuple[Optional[object], Optional[float]]:
    """((h, w) bits/dim map, its mean), or (None, None) for an image smaller than the prior's minimum."""
    from flowrt.errors import InputError
    from flowrt.prior.density_map import bits_map

    try:
        result = bits_map(flow, rgb8)
    except InputError:   # too small to score: the page shows the pair without maps
        return None, None
    return result.bits, result.bits_per_dim
