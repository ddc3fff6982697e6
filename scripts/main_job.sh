#!/usr/bin/env bash
# The main job: a short training benchmark of a tiny zoo model on this machine,
# through the guide's interactive script. It prints a Megatron-style line per
# iteration (throughput and loss) and leaves metrics.jsonl and TensorBoard
# events under output/main_job.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export MODEL=${MODEL:-tiny-deepseek-v2} GPUS_PER_NODE=${GPUS_PER_NODE:-1} NNODES=1
export OUTPUT_PATH=${OUTPUT_PATH:-$root/output/main_job}
bash "$root/scripts/interactive_benchmarking.sh" --train-iters "${TRAIN_ITERS:-50}" "$@"
