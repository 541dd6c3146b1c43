"""SIGTERM and SIGHUP end a run the way Ctrl-C does.

`timeout`, `docker stop`, systemd and a closed terminal send these; Python's default is to die on
the spot, leaving the hidden temp file behind. Raised as KeyboardInterrupt instead, they unwind
through the pipeline, which keeps the finished frames as ``*.partial.mp4`` and says where.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Interrupted(KeyboardInterrupt):
    """A termination signal, turned into the same unwinding as Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum: int, frame) -> None:
    # a second signal while unwinding must not cut the cleanup short
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


@contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM/SIGHUP raise :class:`Interrupted` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def exit_code(exc: KeyboardInterrupt) -> int:
    """128 + the signal number, as a shell reports a process ended by that signal."""
    return 128 + (exc.signum if isinstance(exc, Interrupted) else signal.SIGINT)


def describe(exc: KeyboardInterrupt) -> str:
    return f"interrupted ({exc.args[0]})" if isinstance(exc, Interrupted) else "interrupted"
