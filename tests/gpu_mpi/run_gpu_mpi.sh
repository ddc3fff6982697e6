#!/usr/bin/env bash
# Runs the GPU + MPI test binary on N local ranks, one per GPU:
# run_gpu_mpi.sh N BINARY [ARGS...]. Exits 77 (skipped), saying why, when
# this machine shows fewer than N GPUs.
set -euo pipefail
ranks=$1
binary=$2
gpus=$("$binary" --visible-gpus)
if ((gpus < ranks)); then
  echo "skipped: $ranks ranks need $ranks GPUs (one per rank); this machine shows $gpus"
  exit 77
fi
exec bash "$(dirname "${BASH_SOURCE[0]}")/../mpi/run_mpi.sh" "$@"
