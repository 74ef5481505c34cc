"""Progress bars (tqdm) on work that can take more than a few seconds: evaluation, the IWAE estimate, sampling,
downloads.  A bar shows on an interactive terminal only; ``--quiet`` (``progress_bars(False)``) switches every bar
off, huggingface_hub's download bars included; ``progress_bars(True)`` shows them even when stderr is not a terminal.

    from zoo.progress import bar, progress_bars
    for batch in bar(batches, desc="evaluate", unit="batch"): ...
    with progress_bars(False): zoo.diagnose(model, "zoo:digits")

A plugin with a long loop of its own asks :func:`enabled` (None: on a terminal only, False: off, True: on).
"""
from __future__ import annotations

import contextvars
import sys
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

_SETTING: contextvars.ContextVar[bool | None] = contextvars.ContextVar("zoo_progress_bars", default=None)


def enabled() -> bool | None:
    """None: bars on an interactive terminal only (the default); False: no bars; True: always."""
    return _SETTING.get()


@contextmanager
def progress_bars(on: bool | None) -> Iterator[None]:
    """Bars for the block: None on a terminal only, False never (downloads too), True always."""
    token = _SETTING.set(on)
    hf_was_off = None
    if on is False:
        try:
            from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars

            hf_was_off = are_progress_bars_disabled()
            disable_progress_bars()
        except ImportError:  # pragma: no cover - huggingface_hub is a dependency
            pass
    try:
        yield
    finally:
        _SETTING.reset(token)
        if hf_was_off is False:
            from huggingface_hub.utils import enable_progress_bars

            enable_progress_bars()


def bar(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "", unit: str = "it"
        ) -> Any:
    """``iterable`` with a tqdm bar on stderr as the setting says (module docstring); the iterable itself when off."""
    setting = _SETTING.get()
    if setting is False:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, file=sys.stderr,
                disable=None if setting is None else False)
