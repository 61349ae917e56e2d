"""Training: :func:`fit` and the parts of its loop, one job per module.

- :mod:`.fit`: :func:`fit`, which checks its input, wires the parts together and runs them;
- :mod:`.protocol`: :class:`TrainableModel`, what ``fit`` needs from a model, and its optional hooks;
- :mod:`.loop`: the epoch loop; :mod:`.epochs`: each epoch's minibatches;
- :mod:`.budget`: how far a run trains (epochs, or samples ending inside an epoch);
  :mod:`.curve`: train and test ELBO at log-spaced points of samples seen;
- :mod:`.counters`: where a run stands (``state_dict``/``load_state_dict``);
- :mod:`.checkpointing`: checkpoints and the last good state; :mod:`.folders`: the run folder at the start;
- :mod:`.guard`: the divergence check and the replay that names the bad step;
- :mod:`.outcome`: the summary, the final ELBOs and the report.

The options are :class:`pyrovae.options.TrainOptions`; data-parallel sharding lives with the
rest of the distributed code in :mod:`pyrovae.distributed`; progress output is :mod:`pyrovae.progress`.
"""

from ..fastpath import OPTIMIZERS
from ..options import TrainOptions
from .fit import FitResult, fit, resolve_device
from .outcome import final_elbos
from .protocol import TrainableModel

__all__ = ["fit", "FitResult", "TrainOptions", "TrainableModel", "OPTIMIZERS", "final_elbos", "resolve_device"]
