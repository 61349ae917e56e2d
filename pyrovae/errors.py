"""The one exception type pyrovae raises for bad input.

Every check that rejects user input (a name, a size, an array, a run folder)
raises :class:`PyroVAEError`. It subclasses :class:`ValueError`, so code that
already catches ``ValueError`` keeps working, and the command line turns it
into a single line on stderr with exit code 2.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class PyroVAEError(ValueError):
    """Bad input to pyrovae: the message is one line that says what to fix."""


class PyroVAEWarning(UserWarning):
    """Something pyrovae repaired on its own and wants the user to know (the command line prints one line)."""


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> PyroVAEError:
    """Build the error for an unknown ``name`` of some ``kind``, suggesting the nearest choice."""
    choices = sorted(choices)
    by_lower = {c.lower(): c for c in choices}  # 'X' should find 'x', 'Normal' 'normal'
    close = difflib.get_close_matches(str(name).lower(), by_lower, n=1, cutoff=0.5)
    hint = f"; did you mean {by_lower[close[0]]!r}?" if close else ""
    return PyroVAEError(f"unknown {kind} {name!r}{hint} (choices: {', '.join(choices)})")


class DistributedError(RuntimeError):
    """A rank lost contact with the others (one crashed, was killed or timed out): the run stops.

    Also importable as ``pyrovae.distributed.DistributedError``; it lives here so that the command
    line can catch it without importing torch.
    """
