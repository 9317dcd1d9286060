"""User-facing errors: anything a user can cause by what they pass in.

The CLI turns a ``FlowrtError`` into one line on stderr and a non-zero exit,
never a traceback. Library code raises the most specific subclass.
"""


class FlowrtError(Exception):
    """A problem with what the user gave (a file, an option, a model), explained in one line."""


class InputError(FlowrtError, ValueError):
    """An input image, mask, kernel or option value is unusable."""


class ModelError(FlowrtError, ValueError):
    """A model folder or checkpoint is missing, corrupt, tampered with or of the wrong kind."""
