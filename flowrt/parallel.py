"""numba's parallel kernels, made safe for how flowrt is used: in forked processes and from threads.

numba takes OpenMP's threading layer when it can, and GNU OpenMP aborts a forked child that runs a
parallel region once its parent has run one ("fork() called from a process already using GNU
OpenMP"): a Python API user's fork-based multiprocessing pool, or a fork-based test harness, would
die on its first restore. numba's own workqueue layer survives fork (and measured as fast as OpenMP
on the denoiser here) but must not be entered from two threads at once. So, unless the user chose a
layer with NUMBA_THREADING_LAYER, flowrt chooses workqueue, and every parallel kernel launch holds
``KERNEL_LOCK`` (a restore from each of several threads then takes turns in its parallel kernels,
each of which uses every core anyway). Import this module before any parallel kernel first runs:
numba settles its layer then.
"""
from __future__ import annotations

import os
import threading

import numba

KERNEL_LOCK = threading.RLock()

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"
