"""What every command shares: turning user errors into one line and an exit code.

Only click is imported here; heavy modules load inside the commands.
"""
from __future__ import annotations

import functools
import logging
import sys

import click


def report_errors(func):
    """Run a command body; a FlowrtError, an OSError (or Ctrl-C) becomes one line on stderr and a
    non-zero exit."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from flowrt.errors import FlowrtError
        from flowrt import interrupts
        try:
            with interrupts.deferred():
                return func(*args, **kwargs)
        except FlowrtError as exc:
            raise click.ClickException(one_line(str(exc))) from None
        except ModuleNotFoundError as exc:  # an install without an extra: say which (flowrt's runtime needs no torch)
            if exc.name not in ("torch", "onnx", "onnxscript"):
                raise
            from flowrt.errors import TORCH_EXTRA
            raise click.ClickException(f"this command needs {exc.name}, which this install lacks: "
                                       f"{TORCH_EXTRA}") from None
        except OSError as exc:  # the library wraps its own I/O; this is the last guard for the rest
            from flowrt.errors import storage_error
            raise click.ClickException(one_line(str(storage_error(exc.filename or "I/O", exc, "continue")))) from None
        except KeyboardInterrupt:
            _interrupted()
        except SystemError as exc:   # Ctrl-C inside a numba kernel: "CPUDispatcher(...) returned a result
            from flowrt.errors import was_interrupted   # with an exception set", the interrupt as its cause
            if not was_interrupted(exc):
                raise
            _interrupted()
    return wrapper


def one_line(text: str) -> str:
    """``text`` with control characters (a newline in a file name) escaped: one line on the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _interrupted() -> None:
    click.echo("interrupted", err=True)
    sys.exit(130)


def refuse_terminal_stdout(output: str) -> None:
    """``-o -`` with stdout on a terminal would fill it with image bytes: one line instead."""
    if output == "-" and sys.stdout is None:   # started with stdout closed (>&-)
        raise click.ClickException("-o - writes to stdout, which is closed; give -o FILE or redirect it")
    if output == "-" and sys.stdout.isatty():
        raise click.ClickException("-o - writes image bytes to stdout, which is a terminal here; "
                               "redirect it (> out.png) or give -o FILE")


def setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr)
    logging.getLogger("flowrt").setLevel(level if verbose else logging.WARNING)


def score_map_prior(model_dir):
    """The torch FlowModel that draws a report's bits/dim maps, or None (with one line saying so)
    where torch is not installed: the page is then written without maps."""
    from flowrt.errors import TORCH_EXTRA, torch_installed
    if not torch_installed():
        click.echo(f"note: no score maps on the page: they need torch ({TORCH_EXTRA})", err=True)
        return None
    from flowrt.prior.folders import load_torch_prior
    return load_torch_prior(model_dir)
