#!/usr/bin/env bash
# Runs every test this machine can run: unit tests, MPI and script tests, and
# the Slurm end-to-end test (it skips, saying why, where Slurm cannot start).
# GPU tests (label gpu) run only where a GPU is: scripts/test.sh -L gpu.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if (($# == 0)); then set -- -LE gpu; fi
ctest --test-dir "$root/build" --output-on-failure -j "$(nproc)" "$@"
