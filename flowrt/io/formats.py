"""The one table of image formats flowrt reads and writes, and the file suffixes that name them."""
from __future__ import annotations

# suffix (lower case, no dot) -> format name as Pillow and flowrt.io.image_file spell it
FORMAT_NAMES = {"png": "PNG", "tif": "TIFF", "tiff": "TIFF", "jpg": "JPEG", "jpeg": "JPEG",
                "webp": "WEBP", "bmp": "BMP"}
IMAGE_SUFFIXES = frozenset("." + s for s in FORMAT_NAMES)          # what batch and training pick up
TIFF_SUFFIXES = frozenset("." + s for s, f in FORMAT_NAMES.items() if f == "TIFF")
# format -> the suffix flowrt gives a file it names itself (``--format`` with a folder output)
SUFFIX_FOR = {"PNG": ".png", "TIFF": ".tif", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp"}
# what ``--format`` accepts
FORMAT_CHOICES = ("png", "tif", "jpg", "webp", "bmp")
# formats whose encoder throws information away: batch writes their inputs as PNG by default
LOSSY_FORMATS = frozenset({"JPEG", "WEBP"})
# formats that take ``--quality`` (1-100); JPEG_QUALITY is JPEG's when none is given (WebP is then lossless)
QUALITY_FORMATS = frozenset({"JPEG", "WEBP"})
JPEG_QUALITY = 95
# formats that hold 8-bit samples only
EIGHT_BIT_FORMATS = frozenset({"JPEG", "WEBP", "BMP"})
