"""The README's picture of a ``flowrt batch --report`` page, taken in headless Chromium.

    python benchmarks/report_screenshot.py            # about a minute on 2 CPU cores

Three centre crops of ../shared/data/val-photos are degraded as the quality protocol does (noise
sigma 25 as PNG, JPEG quality 20), restored by ``flowrt batch --report`` with the packaged default
prior, blind (--sigma auto, --jpeg auto) and few iterations (a picture of the page, not of the best
quality), and the top of the page is captured after dragging the first slider to a third.
Writes results/report_screenshot.png; with --keep DIR, the page and images stay in DIR.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from benchmarks.headless_chromium import Chromium, find_chromium  # noqa: E402
from benchmarks.protocol import TASKS, degrade, load_photo, seed_for  # noqa: E402

PHOTOS = (("jxl_flower.png", "noise"), ("wesaturate_u76c0g_bliznaca.png", "jpeg"),
          ("wesaturate_cvo9xd_keong_macan.png", "noise"))


def make_inputs(data: Path, folder: Path, crop: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, task in PHOTOS:
        spec = TASKS[task]
        _, encoded = degrade(load_photo(data / name, crop), spec, seed_for(task, name))
        (folder / f"{Path(name).stem}_{task}{spec.suffix}").write_bytes(encoded)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "val-photos")
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--iters", type=int, default=40)
    ap.add_argument("--height", type=int, default=1500, help="pixels of the page captured from its top")
    ap.add_argument("--keep", type=Path, help="keep the inputs, outputs and page here")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "report_screenshot.png")
    args = ap.parse_args(argv)
    browser = find_chromium()
    if browser is None:
        print("error: no chromium on PATH (apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        work = args.keep or Path(scratch)
        make_inputs(args.data, work / "in", args.crop)
        page = work / "report.html"
        subprocess.run([sys.executable, "-m", "flowrt.cli.main", "batch", str(work / "in"), "-o", str(work / "out"),
                        "--report", str(page), "--iters", str(args.iters)], check=True)
        with Chromium(browser, width=1100, height=args.height) as chromium:
            chromium.open(page)
            if chromium.problems():
                print("error: the page has problems:", *chromium.problems(), sep="\n  ", file=sys.stderr)
                return 1
            box = chromium.box(".split")
            y = box["y"] + box["height"] / 2
            chromium.drag(box["x"] + box["width"] / 2, y, box["x"] + box["width"] / 3)
            chromium.evaluate("window.scrollTo(0, 0)")
            data = chromium.call("Page.captureScreenshot", {"format": "png"})["data"]
    import base64
    args.out.write_bytes(base64.b64decode(data))
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
