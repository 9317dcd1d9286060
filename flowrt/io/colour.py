"""The one set of colour constants: how flowrt turns RGB into grey, everywhere."""
from __future__ import annotations

# ITU-R BT.601 luma weights, as Pillow's RGB -> L conversion and JPEG's Y channel use them.
LUMA_601 = (0.299, 0.587, 0.114)
