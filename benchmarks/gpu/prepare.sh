#!/usr/bin/env bash
# Fill the two ignored folders that benchmarks/gpu/run.sh needs on a GPU machine that has torch and
# torchvision (Python 3.12) but nothing else, from this machine (run it from the repository root):
#
#   .whl/                 pyro-ppl, pyro-api and mlxtend from /work/shared/wheels, and what the GPU
#                         machine may lack besides: tqdm, opt_einsum (Pyro's), matplotlib (the figures)
#                         and pytest (the CUDA tests), downloaded for CPython 3.12 on x86-64 Linux
#   .data/fashion-mnist/  the four idx files of the Debian package dataset-fashion-mnist
#                         (apt-get install -y dataset-fashion-mnist puts them in /usr/share/datasets/fashion-mnist/)
#
# Both are listed in .gitignore; the device call carries them: carry=[".whl", ".data"] (about 50 MiB of the 64).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl .data/fashion-mnist
cp /work/shared/wheels/*.whl .whl/
python -m pip download -q --dest .whl --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  tqdm opt_einsum matplotlib pytest
rm -f .whl/numpy-*.whl .whl/pillow-*.whl  # torchvision brings both
cp /usr/share/datasets/fashion-mnist/*-ubyte.gz .data/fashion-mnist/
du -sh .whl .data
