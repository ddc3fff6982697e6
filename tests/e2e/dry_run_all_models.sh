#!/usr/bin/env bash
# DRY_RUN=1 through the guide's script for every seed model: each prints an
# sbatch script and a training command and submits nothing; DeepSeek-V2-Lite's
# output equals the golden file; a wrong mapping exits non-zero with one line.
# Usage: dry_run_all_models.sh <moebench binary>   (UPDATE_GOLDEN=1 rewrites the golden file)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export MOEBENCH_BIN=$(realpath "$1") MOEBENCH_CONFIG_DIR=$root/configs
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

for model in Mixtral-8x2B Mixtral-8x7B Mixtral-8x22B DeepSeek-V2 DeepSeek-V2-Lite DeepSeek-V3 Qwen2-57B-A14B; do
  out=$scratch/$model.txt
  DRY_RUN=1 MODEL=$model CLUSTER=template USER=ci bash "$root/scripts/sbatch_benchmarking.sh" >"$out" \
    || fail "$model: dry run exited $?"
  grep -q '^#SBATCH --job-name=' "$out" || fail "$model: no job name in the script"
  grep -q '^srun --mpi=pmix --container-image=/images/moebench.sqsh' "$out" || fail "$model: no srun line"
  grep -q -- "--expert-model-parallel-size" "$out" || fail "$model: no training command"
  [[ ! -e /results/ci ]] || fail "$model: a dry run wrote files"
  echo "ok: $model"
done

# The extra flag is appended, as in the guide's quick start.
DRY_RUN=1 MODEL=DeepSeek-V2-Lite CLUSTER=template USER=ci PR=bf16 TP=1 PP=1 EP=8 VPP=1 MBS=1 GBS=512 SEQ_LEN=4096 \
  MOE_TOKEN_DISPATCHER=alltoall MOE_GROUPED_GEMM=true bash "$root/scripts/sbatch_benchmarking.sh" --moe-extended-ep \
  | sed "s|$MOEBENCH_BIN|<moebench>|g" >"$scratch/golden.txt"
golden=$root/tests/golden/dry_run_DeepSeek-V2-Lite.txt
if [[ "${UPDATE_GOLDEN:-0}" == 1 ]]; then cp "$scratch/golden.txt" "$golden"; fi
diff -u "$golden" "$scratch/golden.txt" || fail "DeepSeek-V2-Lite dry run differs from $golden"
echo "ok: golden"

# A wrong mapping: non-zero exit, one line naming the rule.
set +e
DRY_RUN=1 MODEL=DeepSeek-V2-Lite TP=3 bash "$root/scripts/sbatch_benchmarking.sh" >"$scratch/out" 2>"$scratch/err"
status=$?
set -e
[[ $status == 2 ]] || fail "TP=3 exited $status, expected 2"
[[ $(wc -l <"$scratch/err") == 1 ]] || fail "TP=3 error is not one line: $(cat "$scratch/err")"
grep -q "TP=3" "$scratch/err" || fail "TP=3 error does not name the value: $(cat "$scratch/err")"
echo "ok: TP=3 rejected: $(cat "$scratch/err")"
