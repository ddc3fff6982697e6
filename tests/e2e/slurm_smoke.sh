#!/usr/bin/env bash
# Proves the local Slurm harness the way our launcher uses Slurm: a 2-task
# sbatch job, and an MPI program started by `srun --mpi=pmix` (directly and
# inside sbatch) that must see both ranks. Exits 77 (skipped) where the
# harness cannot run.
#   tests/e2e/slurm_smoke.sh [scratch-dir]
set -euo pipefail

harness=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/local_slurm.sh
scratch=${1:-}
[[ -n $scratch ]] || scratch=$(mktemp -d /tmp/moebench-slurm-smoke.XXXXXX) made_scratch=1

# Daemons never outlive the test; a scratch directory of ours is removed
# unless it holds the logs of a failure.
finish() {
  local status=$?
  "$harness" stop "$scratch"
  if [[ -n ${made_scratch:-} ]] && ((status == 0 || status == 77)); then
    rm -rf "$scratch"
  elif ((status != 0 && status != 77)); then
    echo "slurm_smoke: failed; logs and outputs are in $scratch" >&2
  fi
}
trap finish EXIT

conf=$("$harness" start "$scratch") || exit $?
eval "$conf"

fail() {
  echo "slurm_smoke: $*" >&2
  exit 1
}

# Both ranks' lines must be in the output file; RANK in the pattern stands
# for the rank.
expect_ranks() {
  local file=$1 pattern=$2 rank
  for rank in 0 1; do
    grep -q "${pattern//RANK/$rank}" "$file" ||
      fail "$file lacks rank $rank; it holds: $(cat "$file")"
  done
}

job=$(sbatch --parsable --nodes=1 --ntasks-per-node=2 --output="$scratch/hostname-%j.out" \
  --wrap 'srun --mpi=pmix --label hostname')
"$harness" wait-job "$job" 60 >/dev/null
expect_ranks "$scratch/hostname-$job.out" "^RANK: $(hostname -s)\$"
echo "slurm_smoke: sbatch job $job ran hostname on 2 tasks"

cat >"$scratch/mpi_hello.cpp" <<'EOF'
#include <mpi.h>
#include <cstdio>
int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::printf("rank %d of %d\n", rank, size);
  MPI_Finalize();
}
EOF
mpicxx -O1 -o "$scratch/mpi_hello" "$scratch/mpi_hello.cpp"

srun --mpi=pmix --nodes=1 --ntasks=2 "$scratch/mpi_hello" >"$scratch/mpi_srun.out"
expect_ranks "$scratch/mpi_srun.out" "^rank RANK of 2\$"
echo "slurm_smoke: srun --mpi=pmix ran MPI ranks 0 and 1 of 2"

job=$(sbatch --parsable --nodes=1 --ntasks-per-node=2 --output="$scratch/mpi-%j.out" \
  --wrap "srun --mpi=pmix $scratch/mpi_hello")
"$harness" wait-job "$job" 60 >/dev/null
expect_ranks "$scratch/mpi-$job.out" "^rank RANK of 2\$"
echo "slurm_smoke: sbatch job $job ran MPI ranks 0 and 1 of 2"
