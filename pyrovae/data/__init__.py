"""Datasets for pyrovae: loading, checking, binarizing, and a synthetic PPCA model.

Every dataset is a :class:`Dataset` of float32 row matrices. Names resolve
through the :data:`DATASETS` registry; :func:`load_dataset` also accepts a path
to a user's ``.npz`` or ``.pt`` file. The digit data follow the AEVB paper's
set-up: grey levels in [0, 1], read as Bernoulli probabilities and binarized
either once (``static``) or afresh every epoch (``dynamic``).

:class:`PPCA` is the linear-Gaussian model behind the ``synthetic`` dataset.
Its marginal likelihood and posterior are known exactly, so the estimators can
be checked against the truth.

Array checks live in :mod:`pyrovae.validation`; ``validate_array`` is
importable from here too.

The package is split by concern, each module importing only those below it:

- :mod:`.labels`: :func:`validate_labels`, the label check the model uses
- :mod:`.binarization`: :data:`BINARIZATIONS`, :func:`binarize`, :func:`fresh_binarization` and :func:`parallel_uniforms`
- :mod:`.ppca`: the :class:`PPCA` ground-truth model
- :mod:`.dataset`: the :class:`Dataset` type and the shared split helpers
- :mod:`.mnist5k`, :mod:`.idx`, :mod:`.synthetic`: the built-in loaders
  (:func:`load_idx` reads one idx file)
- :mod:`.files`: the user's own ``.npz``/``.pt`` files
- :mod:`.registry`: :data:`DATASETS` and :func:`load_dataset`

The public names of the former single module are importable from here as
before; private helpers live in their own modules (patch them there, e.g.
``pyrovae.data.idx._SYSTEM_DIRS``, since the code reads them there).
"""

from __future__ import annotations

from .binarization import BINARIZATIONS, binarize, fresh_binarization, parallel_uniforms
from .dataset import Dataset
from .idx import load_idx
from .labels import validate_labels
from .ppca import PPCA
from .registry import DATASETS, load_dataset

# Re-exported from pyrovae.validation, as before the split.
from ..validation import validate_array

__all__ = [
    "BINARIZATIONS", "DATASETS", "Dataset", "PPCA", "binarize", "fresh_binarization", "load_dataset", "load_idx",
    "parallel_uniforms", "validate_array", "validate_labels",
]
