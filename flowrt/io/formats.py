"""The one table of image formats flowrt reads and writes, and the file suffixes that name them."""
from __future__ import annotations

# suffix (lower case, no dot) -> format name as Pillow and flowrt.io.image_file spell it
FORMAT_NAMES = {"png": "PNG", "tif": "TIFF", "tiff": "TIFF", "jpg": "JPEG", "jpeg": "JPEG"}
IMAGE_SUFFIXES = frozenset("." + s for s in FORMAT_NAMES)          # what batch and training pick up
TIFF_SUFFIXES = frozenset("." + s for s, f in FORMAT_NAMES.items() if f == "TIFF")
