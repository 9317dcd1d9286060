"""One self-contained HTML page of before/after results: sliders, plans, timings and score maps.

Self-contained means nothing is fetched: images are data URIs, CSS and the few lines of script are
inline, no web font. The slider is an ``<input type=range>`` (keyboard and screen-reader friendly)
that clips the top ("before") picture; without script the page still shows both pictures.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from flowrt.io.atomic import atomic_file
from flowrt.report.heatmap import LUT, colourize, value_range
from flowrt.report.preview import PREVIEW_SIDE, block_mean, data_uri, fit, resized

MAP_SIDE = 460   # longest side of each score-map preview (two sit side by side)


@dataclass(frozen=True)
class ReportItem:
    """One before/after pair. before: (H, W, 3) uint8 input; after: (H', W', 3) uint8 result (H', W'
    may be a multiple of H, W: super-resolution); details: (label, text) rows (plan, timings...);
    *_map: (h, w) bits/dim maps from ``flowrt.prior.density_map`` and their means, or None."""
    name: str
    before: np.ndarray
    after: np.ndarray
    details: Tuple[Tuple[str, str], ...] = ()
    before_map: Optional[np.ndarray] = None
    after_map: Optional[np.ndarray] = None
    before_bpd: Optional[float] = None
    after_bpd: Optional[float] = None


def render_page(items: Sequence[ReportItem], *, title: str, notes: Sequence[str] = (),
                failures: Sequence[str] = ()) -> str:
    """The page's HTML text. notes: lines under the title; failures: one line per image not restored."""
    cards = "\n".join(_card(i, item) for i, item in enumerate(items))
    note_lines = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    failed = "".join(f"<li>{html.escape(f)}</li>" for f in failures)
    failed_block = f'<section class="failed"><h2>Not restored</h2><ul>{failed}</ul></section>' if failures else ""
    return _TEMPLATE.format(title=html.escape(title), style=_STYLE, script=_SCRIPT, notes=note_lines,
                            summary=_summary(items), cards=cards, failed=failed_block)


def write_page(path: Union[str, Path], text: str) -> None:
    """Write the page atomically (whole or not at all), UTF-8; its folder is created if missing."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "w") as fh:
        fh.write(text)


def _summary(items: Sequence[ReportItem]) -> str:
    rows = []
    for i, item in enumerate(items):
        h, w = item.before.shape[:2]
        ho, wo = item.after.shape[:2]
        rows.append(f'<tr><td><a href="#img{i}">{html.escape(item.name)}</a></td><td>{w}×{h}</td>'
                    f"<td>{wo}×{ho}</td><td>{html.escape(_time(item))}</td><td>{_bpd(item.before_bpd)}</td>"
                    f"<td>{_bpd(item.after_bpd)}</td></tr>")
    return ("<table class=summary><thead><tr><th>image</th><th>input</th><th>output</th><th>time</th>"
            "<th>bits/dim before</th><th>bits/dim after</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _bpd(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.3f}"


def _time(item: ReportItem) -> str:
    return dict(item.details).get("time", "–")


def _card(index: int, item: ReportItem) -> str:
    name = html.escape(item.name)
    h, w = item.after.shape[:2]
    size = fit((w, h), PREVIEW_SIDE)
    before = data_uri(resized(item.before, size))
    after = data_uri(resized(item.after, size))
    shrunk = "" if size == (w, h) else f'<p class="hint">Preview downscaled from {w}×{h} to {size[0]}×{size[1]}.</p>'
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in item.details)
    return f"""<section class="card" id="img{index}">
<h2>{name}</h2>
<figure class="compare" style="--pos:50%; aspect-ratio:{size[0]}/{size[1]}; max-width:{min(PREVIEW_SIDE, 3 * size[0])}px">
  <img class="after" src="{after}" alt="{name}, restored" width="{size[0]}" height="{size[1]}">
  <img class="before" src="{before}" alt="{name}, input" width="{size[0]}" height="{size[1]}">
  <div class="divider" aria-hidden="true"></div>
  <span class="tag left">before</span><span class="tag right">after</span>
</figure>
<input class="split" style="max-width:{min(PREVIEW_SIDE, 3 * size[0])}px" type="range" min="0" max="100" step="0.5" value="50"
  aria-label="Before/after split for {name}: left of it the input, right of it the result">
{shrunk}
<div class="facts"><table class="details">{rows}</table>{_maps(item)}</div>
</section>"""


def _maps(item: ReportItem) -> str:
    maps = [(label, m, bpd) for label, m, bpd in (("before", item.before_map, item.before_bpd),
                                                  ("after", item.after_map, item.after_bpd)) if m is not None]
    if not maps:
        return ""
    small = [(label, block_mean(m, MAP_SIDE), bpd) for label, m, bpd in maps]
    lo, hi = value_range([m for _, m, _ in small])   # one colour scale for both, so they compare
    figures = "".join(
        f'<figure class="map"><img src="{data_uri(Image.fromarray(colourize(m, lo, hi)), "PNG")}" '
        f'alt="bits/dim map of the {label} image"><figcaption>{label}: {_bpd(bpd)} bits/dim</figcaption></figure>'
        for label, m, bpd in small)
    return (f'<div class="maps"><h3>Where the bits go</h3><div class="pair">{figures}{_colour_bar(lo, hi)}</div>'
            '<p class="hint">Bits/dim per region under the prior, one colour scale for both: bright = unlikely '
            "(noise, artefacts, damage). Lower is not always better: an over-smoothed image scores lower than "
            "the clean photo.</p></div>")


def _colour_bar(lo: float, hi: float) -> str:
    """A vertical CSS gradient of the heat map's colours with five labels (values beyond are clipped)."""
    stops = ", ".join(f"rgb{tuple(int(c) for c in LUT[i])} {100 * i / 255:.1f}%" for i in range(0, 256, 32)) + \
        f", rgb{tuple(int(c) for c in LUT[255])} 100%"
    ticks = "".join(f'<span style="bottom:{100 * f:.0f}%">{lo + f * (hi - lo):.2f}</span>'
                    for f in (0, 0.25, 0.5, 0.75, 1))
    return (f'<div class="bar" role="img" aria-label="colour scale from {lo:.2f} to {hi:.2f} bits/dim">'
            f'<div class="ramp" style="background:linear-gradient(to top, {stops})"></div>'
            f'<div class="ticks">{ticks}</div><div class="unit">bits/dim</div></div>')


_STYLE = """
:root { color-scheme: light; --ink:#1d2430; --muted:#5b6575; --line:#dde2ea; --accent:#d1495b; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--ink);
       background:#f4f6f9; }
header { background:#1d2430; color:#fff; padding:22px 32px; }
header h1 { margin:0 0 6px; font-size:22px; font-weight:600; }
header ul { margin:0; padding-left:18px; color:#c9d1dc; font-size:13px; }
main { max-width:1000px; margin:0 auto; padding:24px 20px 48px; }
table { border-collapse:collapse; font-size:13px; }
.summary { width:100%; background:#fff; border:1px solid var(--line); border-radius:8px; overflow:hidden; }
.summary th, .summary td { padding:6px 10px; text-align:left; border-bottom:1px solid var(--line); }
.summary thead th { background:#eef1f5; font-weight:600; }
.card { background:#fff; border:1px solid var(--line); border-radius:10px; padding:18px 20px 20px; margin-top:24px;
        box-shadow:0 1px 3px rgba(20,30,50,.06); }
.card h2 { margin:0 0 12px; font-size:18px; font-weight:600; word-break:break-all; }
.compare { position:relative; margin:0; width:100%; max-width:960px; overflow:hidden; border-radius:6px;
           background:#000; user-select:none; }
.compare img { position:absolute; inset:0; width:100%; height:100%; display:block; image-rendering:auto; }
.compare .before { clip-path: inset(0 calc(100% - var(--pos)) 0 0); }
.divider { position:absolute; top:0; bottom:0; left:var(--pos); width:2px; margin-left:-1px; background:#fff;
           box-shadow:0 0 4px rgba(0,0,0,.6); pointer-events:none; }
.tag { position:absolute; top:8px; padding:2px 8px; border-radius:4px; font-size:12px; font-weight:600;
       background:rgba(0,0,0,.55); color:#fff; pointer-events:none; }
.tag.left { left:8px; } .tag.right { right:8px; }
.split { width:100%; max-width:960px; margin:10px 0 0; accent-color:var(--accent); cursor:ew-resize; }
.split:focus-visible { outline:2px solid var(--accent); outline-offset:3px; }
.hint { color:var(--muted); font-size:12.5px; margin:6px 0 0; }
.facts { display:flex; flex-wrap:wrap; gap:20px; margin-top:14px; }
.details { flex:1 1 260px; align-self:flex-start; }
.details th { text-align:left; color:var(--muted); font-weight:500; padding:4px 12px 4px 0; vertical-align:top;
              white-space:nowrap; }
.details td { padding:4px 0; }
.maps { flex:2 1 520px; }
.maps h3 { margin:0 0 8px; font-size:14px; font-weight:600; }
.pair { display:flex; flex-wrap:wrap; gap:12px; }
.map { margin:0; flex:1 1 200px; min-width:0; }
.bar { position:relative; flex:0 0 78px; height:180px; margin-top:2px; }
.ramp { position:absolute; left:0; top:0; bottom:0; width:16px; border:1px solid #555; }
.ticks span { position:absolute; left:22px; transform:translateY(50%); font-size:11.5px; color:var(--ink); }
.unit { position:absolute; left:0; bottom:-28px; font-size:11.5px; color:var(--muted); }
.map img { width:100%; height:auto; display:block; border:1px solid var(--line); image-rendering:pixelated; }
.map figcaption { font-size:12.5px; color:var(--muted); margin-top:3px; }
.failed { margin-top:24px; color:#8a1c2b; }
"""

_SCRIPT = """
for (const card of document.querySelectorAll('.card')) {
  const figure = card.querySelector('.compare');
  const slider = card.querySelector('.split');
  if (!figure || !slider) continue;
  const show = () => figure.style.setProperty('--pos', slider.value + '%');
  slider.addEventListener('input', show);
  show();
}
"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header><h1>{title}</h1><ul>{notes}</ul></header>
<main>
{summary}
{cards}
{failed}
</main>
<script>{script}</script>
</body>
</html>
"""
