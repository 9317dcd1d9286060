"""Which Ray cluster ``flowrt batch --ray`` runs on, and how the driver connects to it.

Ray is an optional extra (``pip install "flowrt[ray]"``): it is imported here, only when asked for,
and its absence is one line telling how to install it.
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Iterator, Optional

from flowrt.errors import InputError

__all__ = ["INSTALL_HINT", "OUTPUT_MODES", "RaySettings", "import_ray", "connect"]

INSTALL_HINT = 'flowrt batch --ray needs Ray, which is not installed: pip install "flowrt[ray]"'
OUTPUT_MODES = ("driver", "worker")
LOCAL_OBJECT_STORE = 200 * 1024 * 1024   # bytes; a local cluster holds a few images and tiles at a time


@dataclass(frozen=True)
class RaySettings:
    """address: 'auto' (the running cluster: RAY_ADDRESS or one started by ``ray start`` on this
    machine), 'local' (start one inside this process, bound to 127.0.0.1), or a cluster address
    ('HOST:6379', 'ray://HOST:10001'). output: who writes a whole image's output: 'driver' (the
    worker returns the pixels; workers need no shared folder: the driver also sends them the decoded
    input) or 'worker' (the worker reads IN and writes OUT itself: every node must see both folders
    at the same paths). A tiled image is always blended and written by the driver. max_retries: how
    often Ray reruns a task whose worker died. window: tasks in flight per kind (images, tiles);
    0 = twice the cluster's CPUs. local_cpus: CPUs of a 'local' cluster (None: all)."""
    address: str = "auto"
    output: str = "driver"
    max_retries: int = 3
    window: int = 0
    local_cpus: Optional[int] = None

    def validate(self) -> "RaySettings":
        if self.output not in OUTPUT_MODES:
            raise InputError(f"--ray-output must be one of {', '.join(OUTPUT_MODES)}, not {self.output!r}")
        if self.max_retries < 0 or self.window < 0:
            raise InputError("max_retries and window must be >= 0")
        if not self.address:
            raise InputError("--ray needs 'auto', 'local' or a cluster address")
        return self


def import_ray():
    """The ``ray`` module, or InputError with the install command."""
    try:
        import ray
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return ray


@contextlib.contextmanager
def connect(settings: RaySettings) -> Iterator[object]:
    """Yield ``ray`` connected as ``settings`` say; disconnect (and stop a 'local' cluster) after.

    A process already connected (a test's shared cluster, a notebook) keeps its connection and
    this leaves it open.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    common = dict(logging_level=logging.ERROR, log_to_driver=False)
    if settings.address == "local":
        # an in-process cluster: nothing reachable from outside this machine, no usage report
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=settings.local_cpus, object_store_memory=LOCAL_OBJECT_STORE, include_dashboard=False,
                 _node_ip_address="127.0.0.1", **common)
    else:
        _check_reachable(settings.address)
        try:
            ray.init(address=settings.address, **common)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"cannot reach a Ray cluster at {settings.address!r} ({first}); start one with "
                             "`ray start --head`, use --ray local, or, for a cluster with token authentication, "
                             "set RAY_AUTH_MODE=token here too") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """InputError unless HOST:PORT (or ray://HOST:PORT) accepts a connection: Ray itself keeps
    retrying an unreachable address for minutes. 'auto' is left to Ray (it fails at once)."""
    import socket
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise InputError(f"cannot reach a Ray cluster at {address!r} ({exc.strerror or exc}); "
                         "start one with `ray start --head` or use --ray local") from None
