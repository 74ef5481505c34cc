"""Stopping a run cleanly: while the loop runs, SIGINT and SIGTERM ask it to stop at the next step boundary (it
then writes a checkpoint of that step); a second Ctrl-C stops at once, as Python's default."""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


class StopRequest:
    """Set by a signal: ``requested`` and the signal's ``name``."""

    def __init__(self) -> None:
        self.requested = False
        self.name = ""


@contextlib.contextmanager
def stop_signals() -> Iterator[StopRequest]:
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def ask(signum, frame):
        if stop.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.requested, stop.name = True, signal.Signals(signum).name

    saved = {s: signal.signal(s, ask) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
