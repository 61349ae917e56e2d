"""Class-label checks shared by the datasets and the model.

:func:`validate_labels` is what :mod:`pyrovae.vae`, :mod:`pyrovae.plots` and
:mod:`pyrovae.diagnostics` call on labels; the shape and dtype checks
themselves live in :func:`pyrovae.validation.check_labels`.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import PyroVAEError
from ..validation import check_labels


def validate_labels(y: Any, n_rows: int, num_classes: int | None = None, name: str = "labels") -> torch.Tensor:
    """Check class labels and return them as an int64 vector of length ``n_rows``.

    With ``num_classes``, every label must lie in ``0 .. num_classes - 1``;
    a :class:`PyroVAEError` names the first one that does not.
    """
    t = check_labels(y, n_rows, name)
    if num_classes is not None:
        bad = (t < 0) | (t >= num_classes)
        if bool(bad.any()):
            raise PyroVAEError(f"{name} must lie in 0..{num_classes - 1}, got {int(t[bad][0])}")
    return t
