"""Image files in and out: formats, 16-bit PNG, TIFF streaming, JPEG coefficients, atomic writes."""
