#!/usr/bin/env bash
# Data, expert and pipeline parallelism through the guide's interactive
# script: tiny-mixtral on GPUS_PER_NODE=2 (mpirun, DP=2, distributed
# optimizer), on GPUS_PER_NODE=4 with EP=2 from the environment (DP=4, EP=2,
# expert-DP=2) and on GPUS_PER_NODE=4 with PP=2 EP=2 (two stages of one layer,
# DP=2 per stage folded into EP=2) must log the losses and gradient norms of
# the same run on 1 rank, and only rank 0 may print and write metrics (with PP
# it logs the last stage's loss). A mapping whose layers do not split over
# the stages fails with the validation message. The warmup is shortened to
# fit the 3 iterations.
# Usage: interactive_dp.sh <moebench binary>
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export MOEBENCH_BIN=$(realpath "$1") MOEBENCH_CONFIG_DIR=$root/configs
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

for ranks in 1 2; do
  MODEL=tiny-mixtral GPUS_PER_NODE=$ranks NNODES=1 OUTPUT_PATH=$scratch/ranks$ranks \
    bash "$root/scripts/interactive_benchmarking.sh" --train-iters 3 --lr-warmup-iters 1 >"$scratch/log$ranks.txt"
done
grep -q "^mpirun -np 2 " "$scratch/log2.txt" || { echo "FAIL: the 2-rank run did not go through mpirun" >&2; exit 1; }
grep -q "2 ranks (DP=2" "$scratch/log2.txt" || { echo "FAIL: the 2-rank run did not train as DP=2" >&2; exit 1; }
lines=$(grep -c "iteration        3/       3" "$scratch/log2.txt")
[[ $lines -eq 1 ]] || { echo "FAIL: iteration 3 logged $lines times; only rank 0 should print" >&2; exit 1; }

MODEL=tiny-mixtral GPUS_PER_NODE=4 EP=2 NNODES=1 OUTPUT_PATH=$scratch/ranks4 \
  bash "$root/scripts/interactive_benchmarking.sh" --train-iters 3 --lr-warmup-iters 1 >"$scratch/log4.txt"
grep -q "4 ranks (DP=4, PP=1, VPP=1, EP=2" "$scratch/log4.txt" ||
  { echo "FAIL: the 4-rank run did not train as DP=4 x EP=2" >&2; exit 1; }

MODEL=tiny-mixtral GPUS_PER_NODE=4 PP=2 EP=2 NNODES=1 OUTPUT_PATH=$scratch/ranks4pp \
  bash "$root/scripts/interactive_benchmarking.sh" --train-iters 3 --lr-warmup-iters 1 >"$scratch/log4pp.txt"
grep -q "4 ranks (DP=2, PP=2, VPP=1, EP=2" "$scratch/log4pp.txt" ||
  { echo "FAIL: the 4-rank run did not train as PP=2 x DP=2 x EP=2" >&2; exit 1; }
lines=$(grep -c "iteration        3/       3" "$scratch/log4pp.txt")
[[ $lines -eq 1 ]] || { echo "FAIL: iteration 3 logged $lines times with PP=2; only rank 0 should print" >&2; exit 1; }

if MODEL=tiny-mixtral GPUS_PER_NODE=2 PP=2 NUM_LAYERS=3 NNODES=1 OUTPUT_PATH=$scratch/bad \
  bash "$root/scripts/interactive_benchmarking.sh" --train-iters 1 >"$scratch/bad.txt" 2>&1; then
  echo "FAIL: 3 layers on PP=2 trained" >&2; exit 1
fi
grep -q "num-layers 3 is not divisible by PP=2" "$scratch/bad.txt" ||
  { echo "FAIL: 3 layers on PP=2 did not fail with the validation message:" >&2; cat "$scratch/bad.txt" >&2; exit 1; }

for ranks in 2 4 4pp; do
python3 - "$scratch/ranks1/metrics.jsonl" "$scratch/ranks$ranks/metrics.jsonl" <<'PY'
import json, sys
def train(path):
    return [r for r in map(json.loads, open(path)) if r.get("type") == "train"]
one, two = train(sys.argv[1]), train(sys.argv[2])
assert [r["iteration"] for r in two] == [1, 2, 3], f"2-rank metrics hold iterations {[r['iteration'] for r in two]}"
for a, b in zip(one, two):
    for key in ("lm_loss", "load_balancing_loss", "grad_norm"):
        diff = abs(a[key] - b[key]) / abs(a[key])
        assert diff < 1e-5, f"iteration {a['iteration']} {key}: 1 rank {a[key]}, 2 ranks {b[key]} (relative {diff:.1e})"
print("lm loss, 1 rank :", [round(r["lm_loss"], 6) for r in one])
print("lm loss, N ranks:", [round(r["lm_loss"], 6) for r in two])
PY
done
echo "ok: DP=2, DP=4 x EP=2 and PP=2 x DP=2 x EP=2 log the losses of 1 rank; a bad PP mapping fails validation"
