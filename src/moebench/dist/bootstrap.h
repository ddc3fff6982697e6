#pragma once
// Who this process is among the ranks of a run, as the launcher that started
// it says, and the MPI lifetime that goes with it.
//
//   mpirun -np N          OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK
//   srun --mpi=pmix -n N  SLURM_PROCID / SLURM_STEP_NUM_TASKS / SLURM_LOCALID
//                         (PMIX_RANK shows that PMIx wires up MPI)
//   anything else         one rank
//
// Under srun the world size is read from SLURM_STEP_NUM_TASKS, which only srun
// sets: an sbatch script itself also carries SLURM_PROCID=0 and the job's
// SLURM_NTASKS, yet is a single process.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "moebench/dist/communicator.h"

namespace moebench::dist {

enum class Launcher { kSingleProcess, kMpirun, kSrun };

// "single process", "mpirun" or "srun".
std::string_view name(Launcher launcher);

struct ProcessIdentity {
  Launcher launcher = Launcher::kSingleProcess;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // index among the ranks on this machine: picks the GPU
};

// Reads one environment variable; absent when unset.
using EnvironmentLookup = std::function<std::optional<std::string>(const std::string& name)>;
std::optional<std::string> process_environment(const std::string& name);

// Throws Error when the launcher's variables are malformed or inconsistent
// (a rank outside the world, srun without --mpi=pmix on several ranks).
ProcessIdentity identity_from_environment(const EnvironmentLookup& lookup = process_environment);

// The ranks of the run and their world communicator. With more than one rank
// it initialises MPI (MPI_Init_thread, only the creating thread calls MPI)
// and finalises it when destroyed; one rank needs no MPI and gets a
// SingleRankCommunicator. One World per process, created before and
// destroyed after every communicator split from it.
class World {
 public:
  explicit World(const ProcessIdentity& identity);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  const ProcessIdentity& identity() const { return identity_; }
  Communicator& communicator() const { return *communicator_; }

  // Ends every rank of the run now with `exit_code` (MPI_Abort; with one rank,
  // just this process). For an error on some ranks only: finalising there
  // would leave the others waiting in a collective for ever.
  [[noreturn]] void abort(int exit_code) const;

 private:
  ProcessIdentity identity_;
  bool initialised_mpi_ = false;
  std::unique_ptr<Communicator> communicator_;
};

}  // namespace moebench::dist
