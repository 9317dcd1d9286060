"""Huge images: the tile grid, numba blend kernels, resumable state, streamed sources and sinks."""
