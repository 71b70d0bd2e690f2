"""Ctrl-C that is not lost.

Numba compiles through llvmlite, which calls back into Python via ctypes; a KeyboardInterrupt
raised inside such a callback is printed and swallowed, so a Ctrl-C during the first (cold
cache) compilation would be ignored and the conversion would run to completion. `sticky_sigint`
remembers the signal, and the converter calls `raise_if_interrupted` between tensors and
before it commits the output.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

_pending = False


def _on_sigint(signum, frame) -> None:
    global _pending
    _pending = True
    raise KeyboardInterrupt


@contextmanager
def sticky_sigint() -> Iterator[None]:
    """Within the block, SIGINT raises KeyboardInterrupt and is remembered until the block ends."""
    global _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _pending = False


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if a SIGINT arrived inside `sticky_sigint` and was swallowed."""
    if _pending:
        raise KeyboardInterrupt
