"""Pools of worker processes that leave Ctrl-C to their parent.

A terminal's Ctrl-C reaches every process of the foreground group; a pool worker that handled it would print
its own KeyboardInterrupt traceback. These workers ignore it: the parent's KeyboardInterrupt leaves the
``with`` block, which terminates them, and the command line prints one line ("interrupted; rerun ...").
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from multiprocessing.pool import Pool


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def process_pool(workers: int) -> Pool:
    """A pool of ``workers`` processes (forked where the OS allows: the tasks' modules are already loaded)."""
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    return context.Pool(workers, initializer=_ignore_interrupts)
