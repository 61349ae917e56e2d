"""Progress for people: a live bar on a terminal, a plain line every few seconds in a log (or CI)."""

from __future__ import annotations

import sys
import time
from typing import Any, Optional, TextIO

from tqdm.auto import tqdm

#: Seconds between two progress lines when the output is not a terminal.
LINE_INTERVAL = 10.0


class LineProgress:
    """What a log wants instead of a bar's thousands of ``\\r`` frames: ``train: 120/400 steps (30%),
    epoch=3, elbo=-130.2`` once every :data:`LINE_INTERVAL` seconds, and once at the end.

    The same calls as a ``tqdm`` bar (``update``, ``set_postfix``, a context manager).
    """

    def __init__(self, total: int, desc: str, file: TextIO, interval: float = LINE_INTERVAL,
                 unit: str = "step") -> None:
        self.total, self.desc, self.file, self.interval, self.unit = total, desc, file, interval, unit
        self.done, self.postfix, self.shown = 0, "", 0
        self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        """Count ``n`` steps; print a line if the last one is old enough."""
        self.done += n
        if time.monotonic() - self.last >= self.interval:
            self._line()

    def set_postfix(self, **values: Any) -> None:
        """Values shown after the count (the epoch and the latest ELBO)."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def _line(self) -> None:
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {self.done}/{self.total} {self.unit}s{share}{extra}", file=self.file, flush=True)
        self.last, self.shown = time.monotonic(), self.done

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None and self.done > self.shown:
            self._line()


def progress_bar(total: int, desc: str, enabled: bool = True, unit: str = "step", file: Optional[TextIO] = None):
    """A ``tqdm`` bar on a terminal, :class:`LineProgress` otherwise, a disabled bar when not ``enabled``."""
    file = file or sys.stderr
    if enabled and not _is_terminal(file):
        return LineProgress(total, desc, file, unit=unit)
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True, file=file)


def _is_terminal(file: TextIO) -> bool:
    isatty = getattr(file, "isatty", None)
    return bool(isatty and isatty())
