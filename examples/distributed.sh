#!/usr/bin/env bash
# Data-parallel training with PyTorch's own launcher: 2 CPU processes (gloo) under torchrun.
#
#   bash examples/distributed.sh            # 5 epochs on mnist-5k, 2 ranks, then 1 process; compares them
#   bash examples/distributed.sh --smoke    # 1 epoch on the synthetic set (what CI runs)
#
# What it shows:
#  1. `torchrun --nproc_per_node=2 -m pyrovae train ...` trains one model on 2 ranks. --batch-size is
#     the global minibatch: each rank takes half of every minibatch, the gradients are summed, and
#     rank 0 alone writes the run folder.
#  2. The same command in one process trains the same model: the script prints the largest
#     difference between the two runs' parameters (float32 rounding, ~1e-6) and their test ELBOs.
#  3. `torchrun ... -m pyrovae evaluate` shards the importance-sampled log p(x) over the ranks.
#  4. A run stopped early continues under torchrun with --resume, as in one process.
set -euo pipefail

smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; fi
if [ "$smoke" = 1 ]; then
  out="$(mktemp -d)"
  data=(--dataset synthetic --likelihood normal --batch-size 50)
  epochs=1 samples=20
else
  out="runs/distributed"
  data=(--dataset mnist-5k --batch-size 100)
  epochs=5 samples=1000
fi
rm -rf "$out/two-ranks" "$out/one-process"
common=(train "${data[@]}" --device cpu --no-progress --no-figures)
launch=(python -m torch.distributed.run --standalone --nproc_per_node=2)  # the `torchrun` command

echo "== 2 ranks (gloo), epoch 1, then --resume to epoch $((epochs + 1))"
"${launch[@]}" -m pyrovae "${common[@]}" --epochs 1 --out "$out/two-ranks"
"${launch[@]}" -m pyrovae "${common[@]}" --epochs $((epochs + 1)) --out "$out/two-ranks" --resume

echo "== 1 process, $((epochs + 1)) epochs at once"
python -m pyrovae "${common[@]}" --epochs $((epochs + 1)) --out "$out/one-process"

echo "== log p(x), sharded over 2 ranks"
"${launch[@]}" -m pyrovae evaluate "$out/two-ranks" --samples "$samples" --no-progress

python - "$out" <<'PY'
import json, sys
from pathlib import Path

import torch

out = Path(sys.argv[1])
two, one = (torch.load(out / run / "checkpoint.pt", weights_only=True) for run in ("two-ranks", "one-process"))
diff = max(float((two["model"][k] - one["model"][k]).abs().max()) for k in one["model"])
print(f"largest parameter difference, 2 ranks vs 1 process: {diff:.2e}")
for run in ("two-ranks", "one-process"):
    summary = json.loads((out / run / "summary.json").read_text())
    print(f"{run:<12} world size {summary['world_size']}  test ELBO {summary['test_elbo']['analytic']:.3f}  "
          f"train seconds {summary['train_seconds']:.2f}")
assert diff < 1e-3, "the runs should follow each other up to float32 rounding"
PY
