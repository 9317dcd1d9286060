"""Where and how a restored image is written: ``OutputOptions`` (format, quality, bit depth) and
the output path a user's ``-o`` names (a file, ``-``, or a folder that keeps the input's name)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from flowrt.errors import InputError, storage_error
from flowrt.io.formats import FORMAT_CHOICES, FORMAT_NAMES, LOSSY_FORMATS, QUALITY_FORMATS, SUFFIX_FOR


@dataclass(frozen=True)
class OutputOptions:
    """format: None (from OUT's suffix; PNG for '-'; batch: as the input, PNG for a lossy one) or
    one of png, tif, jpg, webp, bmp. quality: None (JPEG 95 with 4:4:4 chroma, WebP lossless) or
    1-100 for JPEG and WebP output. bit_depth: None (as the input; 8 for JPEG, WebP, BMP), 8 or 16."""
    format: Optional[str] = None
    quality: Optional[int] = None
    bit_depth: Optional[int] = None

    def __post_init__(self) -> None:  # valid by construction, as RestoreOptions
        self.validate()

    def validate(self) -> "OutputOptions":
        if self.format is not None and self.format.lower() not in FORMAT_NAMES:
            raise InputError(f"--format must be one of {', '.join(FORMAT_CHOICES)}, not {self.format!r}")
        if self.quality is not None:
            if isinstance(self.quality, bool) or not isinstance(self.quality, int) or not 1 <= self.quality <= 100:
                raise InputError(f"--quality must be a whole number from 1 to 100, got {self.quality!r}")
            if self.format is not None and self.format_name not in QUALITY_FORMATS:
                raise InputError(f"--quality is for JPEG and WebP output, not {self.format_name}")
        if self.bit_depth not in (None, 8, 16):
            raise InputError(f"--bit-depth must be 8 or 16, got {self.bit_depth!r}")
        return self

    @property
    def format_name(self) -> Optional[str]:
        """'PNG', 'TIFF', 'JPEG', 'WEBP', 'BMP' or None."""
        return None if self.format is None else FORMAT_NAMES[self.format.lower()]


def is_folder_target(out: str) -> bool:
    """Does ``-o out`` name a folder: an existing one, or a path ending with a separator."""
    return out != "-" and (out.endswith(("/", os.sep)) or Path(out).is_dir())


def output_path(in_path: str, out: str, output: OutputOptions = OutputOptions()) -> str:
    """The file ``-o out`` means for input ``in_path``: ``out`` itself (a file or '-'), or, for a
    folder, the input's file name inside it (its suffix changed to ``--format``'s when given). A
    folder named with a trailing separator that does not exist yet is created."""
    out = str(out)
    if not is_folder_target(out):
        return out
    if str(in_path) == "-":
        raise InputError(f"{out} is a folder and the input is stdin: give -o a file name")
    if not Path(out).is_dir():   # 'out/' that does not exist yet: made, as flowrt batch makes OUT_DIR
        try:
            Path(out).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(out, exc, "create the output folder") from None
    name = Path(in_path).name
    if output.format is not None:
        name = Path(name).stem + SUFFIX_FOR[output.format_name]
    return str(Path(out) / name)


def batch_output_name(relative: Path, output: OutputOptions) -> Path:
    """A batch input's output path relative to OUT_DIR: its own name, with ``--format``'s suffix
    when given, else a lossy input's (JPEG, WebP) changed to .png so no second loss is added."""
    if output.format is not None:
        return relative.with_suffix(SUFFIX_FOR[output.format_name])
    if FORMAT_NAMES.get(relative.suffix.lower().lstrip(".")) in LOSSY_FORMATS:
        return relative.with_suffix(SUFFIX_FOR["PNG"])
    return relative
