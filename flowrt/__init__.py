"""flowrt: generic image restoration with a learned normalizing-flow prior."""
__version__ = "0.1.0"
