#!/usr/bin/env bash
# Starts a real single-node Slurm, submits a tiny CPU training run through
# scripts/sbatch_benchmarking.sh, waits for the job and checks its log.
# Exits 77 (skipped) where Slurm cannot start here (not root, no Slurm).
# Usage: slurm_end_to_end.sh <moebench binary>
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export MOEBENCH_BIN=$(realpath "$1") MOEBENCH_CONFIG_DIR=$root/configs
harness=$root/tests/e2e/local_slurm.sh
scratch=$(mktemp -d)
chmod a+x "$scratch"
cleanup() { bash "$harness" stop "$scratch/cluster" >/dev/null 2>&1 || true; rm -rf "$scratch"; }
trap cleanup EXIT

set +e
conf=$(bash "$harness" start "$scratch/cluster")
status=$?
set -e
if ((status == 77)); then echo "skipped: $conf"; exit 77; fi
((status == 0)) || { echo "FAIL: local Slurm did not start" >&2; exit 1; }
eval "$conf"

submitted=$(MODEL=tiny-mixtral CLUSTER=local GPUS_PER_NODE=1 NNODES=1 OUTPUT_PATH=$scratch/out \
  bash "$root/scripts/sbatch_benchmarking.sh" --train-iters 3 --lr-warmup-iters 1 --eval-interval 1000)
echo "$submitted"
job=$(sed -n 's/^Submitted batch job \([0-9]*\).*/\1/p' <<<"$submitted")
[[ -n "$job" ]] || { echo "FAIL: no job id in sbatch's answer" >&2; exit 1; }
bash "$harness" wait-job "$job" 240 >"$scratch/job.txt" || { cat "$scratch/job.txt" "$scratch"/out/slurm_logs/* >&2; exit 1; }

log=$(ls "$scratch"/out/slurm_logs/*-"$job".out)
cat "$log"
grep -q 'iteration *3/ *3' "$log" || { echo "FAIL: the job's log has no third iteration" >&2; exit 1; }
grep -q 'lm loss' "$log" || { echo "FAIL: the job's log has no loss" >&2; exit 1; }
[[ -s "$scratch/out/metrics.jsonl" ]] || { echo "FAIL: the run wrote no metrics.jsonl" >&2; exit 1; }
echo "ok: Slurm job $job trained tiny-mixtral for 3 iterations"
