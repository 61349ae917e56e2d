"""A VAE written the way Pyro's own example is (examples/vae/vae.py): the baseline of bench_startup.py.

Plain Pyro: ``pyro.module`` networks, ``model``/``guide`` with ``pyro.plate``, ``SVI`` with
``Trace_ELBO`` and ``pyro.optim.Adam``, a ``torch.utils.data.DataLoader`` of minibatches, the test
ELBO with ``svi.evaluate_loss`` after every epoch. The same data and network as
``pyrovae train``'s default: mnist-5k (4,000 train rows re-binarized every epoch, 1,000 test rows
binarized once with seed 0), 784-400-20 ReLU, Gaussian encoder, Bernoulli decoder, Adam 1e-3, M = 100.

    python benchmarks/pyro_example_vae.py --epochs 10
"""

from __future__ import annotations

import argparse
import time

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pyrovae.data import load_dataset


class Encoder(nn.Module):
    def __init__(self, z_dim: int = 20, hidden: int = 400) -> None:
        super().__init__()
        self.fc, self.loc, self.log_var = nn.Linear(784, hidden), nn.Linear(hidden, z_dim), nn.Linear(hidden, z_dim)

    def forward(self, x):
        h = torch.relu(self.fc(x))
        return self.loc(h), (0.5 * self.log_var(h)).exp()


class Decoder(nn.Module):
    def __init__(self, z_dim: int = 20, hidden: int = 400) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, 784))

    def forward(self, z):
        return self.net(z)


class ExampleVAE(nn.Module):
    """Pyro's example VAE, with the decoder emitting logits."""

    def __init__(self, z_dim: int = 20) -> None:
        super().__init__()
        self.encoder, self.decoder, self.z_dim = Encoder(z_dim), Decoder(z_dim), z_dim

    def model(self, x):
        pyro.module("decoder", self.decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(self.z_dim), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.decoder(z)).to_event(1), obs=x)

    def guide(self, x):
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            loc, scale = self.encoder(x)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    start = time.perf_counter()
    pyro.set_rng_seed(args.seed)
    data = load_dataset("mnist-5k", binarize="dynamic", seed=0)
    train = DataLoader(TensorDataset(data.train), batch_size=100, shuffle=True)
    vae = ExampleVAE()
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), loss=Trace_ELBO())
    for epoch in range(args.epochs):
        total = sum(svi.step(torch.bernoulli(x)) for (x,) in train)  # dynamic binarization
        test = svi.evaluate_loss(data.test)
        print(f"epoch {epoch + 1}: train ELBO {-total / len(data.train):.2f}, "
              f"test ELBO {-test / len(data.test):.2f}")
    print(f"wall {time.perf_counter() - start:.2f} s (after imports)")


if __name__ == "__main__":
    main()
