"""Small float64 training runs, in one process or as the ranks of a torchrun launch (tests only).

    python tests/dist_worker.py --result R.pt [...]                          # one process
    python -m torch.distributed.run --nproc_per_node 2 tests/dist_worker.py --result R.pt [...]

Writes the trained parameters, metrics and summary (rank 0 only) to ``--result``.
``--grid G.json`` runs every set of options in the JSON list G (keys as the flags, with
underscores) one after the other and writes ``{name: result}``. ``--die-after-epoch E`` makes
rank 1 exit abruptly after epoch E, as a crashed rank would. ``--rank-dirs A,B`` runs rank r
in folder r of the list, so a test can see what each rank wrote.
"""

import argparse
import json
import os
import sys

import pyro
import torch

from pyrovae import VAE, distributed, evaluate_elbo, fit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fa_model import FactorAnalysis  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--result", required=True)
    p.add_argument("--estimator", default="mc")
    p.add_argument("--particles", type=int, default=1)
    p.add_argument("--rows", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=6)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--posterior", default="normal")
    p.add_argument("--prior", default=None)
    p.add_argument("--arch", default="mlp", help="mlp, or conv (the 16 columns as 4x4 images)")
    p.add_argument("--latent", type=int, nargs="+", default=[3], help="one size per stochastic layer")
    p.add_argument("--conditional", default="none")
    p.add_argument("--out", default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--dynamic", action="store_true")
    p.add_argument("--die-after-epoch", type=int, default=None)
    p.add_argument("--model", default="vae", help="vae, or fa (factor analysis, tests/fa_model.py)")
    p.add_argument("--grid", default=None)
    p.add_argument("--rank-dirs", default=None)
    args = p.parse_args()

    torch.set_default_dtype(torch.float64)
    ranks = distributed.init_from_env("cpu")
    if args.rank_dirs:
        os.chdir(args.rank_dirs.split(",")[0 if ranks is None else ranks.rank])
    if args.grid is None:
        result = train(args, ranks)
    else:
        result = {}
        for options in json.loads(open(args.grid).read()):
            name = options.pop("name")
            result[name] = train(argparse.Namespace(**{**vars(args), **options}), ranks)
    if ranks is None or ranks.main:
        torch.save(result, args.result)
    distributed.shutdown()
    return 0


def train(args, ranks) -> dict:
    """One run with the options in ``args``; returns its parameters, metrics and summary."""
    data = torch.Generator().manual_seed(5)
    x = torch.rand(args.rows, 16, generator=data)
    x = x if args.dynamic else torch.bernoulli(x, generator=data)
    test = torch.bernoulli(torch.rand(20, 16, generator=data), generator=data)
    labels = torch.randint(0, 3, (args.rows,), generator=data), torch.randint(0, 3, (20,), generator=data)
    pyro.set_rng_seed(1)
    if args.model == "fa":  # a Pyro model that is not a VAE, and takes no labels
        vae, labels = FactorAnalysis(16, 3), (None, None)
    else:
        vae = VAE(16, tuple(args.latent), (12,), posterior=args.posterior, likelihood="bernoulli",
                  conditional=args.conditional,
                  num_classes=3 if args.conditional != "none" else None, prior=args.prior, arch=args.arch,
                  image_shape=(4, 4))

    seen = []  # rows of x the model gets while training: the whole set, or a rank's shard
    model = vae.model

    def spy(x, *args, **kwargs):
        seen.append(x.shape[0])
        return model(x, *args, **kwargs)

    vae.model = spy

    def die(epoch, _vae):
        if args.die_after_epoch == epoch and ranks is not None and ranks.rank == 1:
            os._exit(3)  # no cleanup, no goodbye: a crash

    result = fit(vae, x, test, estimator=args.estimator, num_particles=args.particles, epochs=args.epochs,
                 batch_size=args.batch_size, lr=1e-2, device="cpu", seed=7, out=args.out, resume=args.resume,
                 progress=False, dynamic_binarization=args.dynamic, step="auto", callback=die, figures=False,
                 train_labels=labels[0], test_labels=labels[1], ranks=ranks)
    rows_held = max(seen)
    evaluation = {}  # sharded only when given the ranks; without them each rank evaluates everything
    for name, given in (("sharded", ranks), ("whole", None)):
        seen.clear()
        evaluation[name] = evaluate_elbo(vae, test, "mc", seed=3, labels=labels[1], ranks=given)
        evaluation[f"{name}_rows"] = sum(seen)
    return {"rows_held": rows_held, "evaluation": evaluation,
            "params": {k: v.detach().clone() for k, v in vae.state_dict().items()},
            "metrics": result.metrics, "summary": json.loads(json.dumps(result.summary))}


if __name__ == "__main__":
    sys.exit(main())
