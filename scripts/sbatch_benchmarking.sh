#!/usr/bin/env bash
# Submits a benchmark to Slurm, as the Megatron MoE guide's script does:
#   MODEL=DeepSeek-V2-Lite [TP=.. PP=.. EP=.. MBS=.. GBS=.. PR=bf16 DRY_RUN=1 ...] \
#     bash scripts/sbatch_benchmarking.sh [--extra-megatron-flag value ...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/moebench_binary.sh"
exec "$MOEBENCH_BIN" launch "$@"
