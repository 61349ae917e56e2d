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


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> PyroVAEError:
    """Build the error for an unknown ``name`` of some ``kind``, suggesting the nearest choice."""
    choices = sorted(choices)
    close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return PyroVAEError(f"unknown {kind} {name!r}{hint} (choices: {', '.join(choices)})")
