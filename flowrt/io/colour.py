"""The one set of colour constants: how flowrt turns RGB into grey and into JPEG's YCbCr, everywhere."""
from __future__ import annotations

# ITU-R BT.601 luma weights, as Pillow's RGB -> L conversion and JPEG's Y channel use them.
LUMA_601 = (0.299, 0.587, 0.114)

# JFIF full-range RGB -> YCbCr rows (Y, Cb, Cr; Y is LUMA_601). The chroma rows' offset of 128
# cancels the encoder's -128 level shift, so only luma is shifted (``LUMA_LEVEL_SHIFT``).
YCBCR_JFIF = (LUMA_601,
              (-0.168736, -0.331264, 0.5),
              (0.5, -0.418688, -0.081312))
LUMA_LEVEL_SHIFT = 128.0
