#!/usr/bin/env bash
# `moebench run --device cuda` on several ranks trains data-parallel only:
# under mpirun with 2 ranks, TP=2, EP=2 and PP=2 must each fail with the
# message naming the mapping the GPU engine supports, before any group is
# built (so on any machine, with or without CUDA or a GPU), and write no
# metrics.
# Usage: gpu_mapping_guard.sh <moebench binary>
set -euo pipefail
binary=$(realpath "$1")
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
root_flag=()
if [[ $(id -u) -eq 0 ]]; then root_flag=(--allow-run-as-root); fi

for mapping in "TP=2 --tensor-model-parallel-size 2" "EP=2 --expert-model-parallel-size 2" \
               "PP=2 --pipeline-model-parallel-size 2"; do
  read -r name flag size <<<"$mapping"
  out=$scratch/$name
  if MODEL=tiny-mixtral MOEBENCH_CONFIG_DIR=$root/configs \
    mpirun -np 2 --oversubscribe "${root_flag[@]}" "$binary" run --device cuda "$flag" "$size" \
      --train-iters 1 --output-dir "$out" >"$scratch/$name.log" 2>&1; then
    echo "FAIL: --device cuda with $name trained on 2 ranks" >&2; exit 1
  fi
  grep -q -- "--device cuda with $name: the GPU engine trains data-parallel only" "$scratch/$name.log" || {
    echo "FAIL: --device cuda with $name did not fail with the mapping message:" >&2
    cat "$scratch/$name.log" >&2; exit 1
  }
  [[ ! -e $out/metrics.jsonl ]] || { echo "FAIL: --device cuda with $name wrote metrics" >&2; exit 1; }
done
echo "TP=2, EP=2 and PP=2 with --device cuda fail with the supported mapping"
