#!/usr/bin/env bash
# Runs a benchmark on this machine with GPUS_PER_NODE ranks (mpirun; one rank
# runs directly), as the Megatron MoE guide's interactive script does:
#   MODEL=tiny-mixtral GPUS_PER_NODE=1 bash scripts/interactive_benchmarking.sh [--flag value ...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/moebench_binary.sh"
exec "$MOEBENCH_BIN" launch --interactive "$@"
