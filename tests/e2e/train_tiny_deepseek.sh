#!/usr/bin/env bash
# 50 iterations of tiny-deepseek-v2 (MLA, group-limited routing, shared
# experts, a dense first layer) on mock data through the guide's interactive
# script, with the guide's --moe-extended-ep (accepted with a note): the loss
# must fall measurably, metrics.jsonl must hold every iteration, and the
# TensorBoard events must read back.
# Usage: train_tiny_deepseek.sh <moebench binary>
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export MOEBENCH_BIN=$(realpath "$1") MOEBENCH_CONFIG_DIR=$root/configs
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

MODEL=tiny-deepseek-v2 GPUS_PER_NODE=1 NNODES=1 OUTPUT_PATH=$scratch \
  bash "$root/scripts/interactive_benchmarking.sh" --train-iters 50 --eval-interval 25 --moe-extended-ep \
  >"$scratch/log.txt"

python3 - "$scratch/metrics.jsonl" <<'PY'
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
train = [r for r in records if r.get("type") == "train"]
valid = [r for r in records if r.get("type") == "validation"]
assert [r["iteration"] for r in train] == list(range(1, 51)), "iterations missing"
first = sum(r["lm_loss"] for r in train[:5]) / 5
last = sum(r["lm_loss"] for r in train[-5:]) / 5
print(f"lm loss: first five {first:.3f}, last five {last:.3f}; validation {[round(r['lm_loss'], 3) for r in valid]}")
assert last < first - 0.5, f"loss did not fall measurably: {first:.3f} -> {last:.3f}"
assert len(valid) >= 2 and valid[-1]["lm_loss"] < valid[0]["lm_loss"], "validation loss did not fall"
PY
events=$(ls "$scratch"/tensorboard/events.out.tfevents.*)
[[ -s "$events" ]] || { echo "FAIL: no TensorBoard events" >&2; exit 1; }
grep -q "iteration       50/      50" "$scratch/log.txt" || { echo "FAIL: no line for iteration 50" >&2; exit 1; }
grep -q "^note: --moe-extended-ep changes nothing" "$scratch/log.txt" || { echo "FAIL: no note for --moe-extended-ep" >&2; exit 1; }
echo "ok: tiny-deepseek-v2 trained for 50 iterations"
