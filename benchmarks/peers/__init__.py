"""Restoration methods the quality benchmark compares: flowrt (through its CLI) and the peers a
user would pick instead. Each is a ``Method`` (see ``base``)."""
