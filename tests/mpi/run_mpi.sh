#!/usr/bin/env bash
# Runs a test binary on N local ranks: run_mpi.sh N BINARY [ARGS...].
# --oversubscribe lets 4 ranks share 2 cores; OpenMPI refuses root without
# --allow-run-as-root, which is added only when running as root.
set -euo pipefail
ranks=$1
shift
root_flag=()
if [[ $(id -u) -eq 0 ]]; then root_flag=(--allow-run-as-root); fi
exec mpirun -np "$ranks" --oversubscribe "${root_flag[@]}" "$@"
