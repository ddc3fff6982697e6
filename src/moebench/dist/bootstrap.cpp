#include "moebench/dist/bootstrap.h"

#include <mpi.h>

#include <charconv>
#include <cstdlib>

#include "moebench/core/error.h"
#include "moebench/dist/mpi_communicator.h"
#include "moebench/dist/single_rank_communicator.h"

namespace moebench::dist {
namespace {

int read_int(const EnvironmentLookup& lookup, const std::string& variable) {
  const std::optional<std::string> text = lookup(variable);
  if (!text) {
    throw Error("the launcher set no " + variable +
                "; start moebench with mpirun, srun --mpi=pmix or as one process");
  }
  int value = 0;
  const char* end = text->data() + text->size();
  const auto [stop, status] = std::from_chars(text->data(), end, value);
  if (status != std::errc() || stop != end || value < 0) {
    throw Error(variable + "=\"" + *text + "\" is not a rank or count (an integer >= 0)");
  }
  return value;
}

ProcessIdentity check_ranks(ProcessIdentity identity) {
  if (identity.world_size < 1 || identity.rank >= identity.world_size) {
    throw Error("the " + std::string(name(identity.launcher)) + " launcher gave rank " +
                std::to_string(identity.rank) + " in a world of " +
                std::to_string(identity.world_size) + " ranks; check the launch command");
  }
  return identity;
}

// MPI_Init_thread's level: parallel code calls MPI from the main thread only.
constexpr int kMpiThreadLevel = MPI_THREAD_FUNNELED;

void initialise_mpi(const ProcessIdentity& identity) {
  int initialised = 0;
  int finalised = 0;
  MPI_Initialized(&initialised);
  MPI_Finalized(&finalised);
  if (initialised || finalised) {
    throw Error("MPI was already initialised in this process; create one dist::World per process");
  }
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, kMpiThreadLevel, &provided);
  int rank = 0;
  int size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (provided < kMpiThreadLevel || rank != identity.rank || size != identity.world_size) {
    MPI_Finalize();
    throw Error("MPI started rank " + std::to_string(rank) + " of " + std::to_string(size) +
                " (thread level " + std::to_string(provided) + ") where " +
                std::string(name(identity.launcher)) + " announced rank " +
                std::to_string(identity.rank) + " of " + std::to_string(identity.world_size) +
                "; launch with the MPI that moebench was built against");
  }
}

}  // namespace

std::string_view name(Launcher launcher) {
  switch (launcher) {
    case Launcher::kSingleProcess:
      return "single process";
    case Launcher::kMpirun:
      return "mpirun";
    case Launcher::kSrun:
      return "srun";
  }
  throw Error("unknown Launcher " + std::to_string(int(launcher)));
}

std::optional<std::string> process_environment(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

ProcessIdentity identity_from_environment(const EnvironmentLookup& lookup) {
  // mpirun first: inside a Slurm allocation mpirun's ranks carry Slurm's
  // job variables too, but OMPI_* describe the process.
  if (lookup("OMPI_COMM_WORLD_SIZE")) {
    return check_ranks({.launcher = Launcher::kMpirun,
                        .rank = read_int(lookup, "OMPI_COMM_WORLD_RANK"),
                        .world_size = read_int(lookup, "OMPI_COMM_WORLD_SIZE"),
                        .local_rank = read_int(lookup, "OMPI_COMM_WORLD_LOCAL_RANK")});
  }
  if (lookup("SLURM_STEP_NUM_TASKS")) {
    const ProcessIdentity identity = check_ranks({.launcher = Launcher::kSrun,
                                                  .rank = read_int(lookup, "SLURM_PROCID"),
                                                  .world_size = read_int(lookup, "SLURM_STEP_NUM_TASKS"),
                                                  .local_rank = read_int(lookup, "SLURM_LOCALID")});
    if (identity.world_size > 1 && !lookup("PMIX_RANK")) {
      throw Error("srun started " + std::to_string(identity.world_size) +
                  " tasks without PMIx, so MPI cannot connect them; launch with srun --mpi=pmix");
    }
    return identity;
  }
  return {};
}

World::World(const ProcessIdentity& identity) : identity_(check_ranks(identity)) {
  if (identity_.world_size == 1) {
    communicator_ = std::make_unique<SingleRankCommunicator>();
    return;
  }
  initialise_mpi(identity_);
  initialised_mpi_ = true;
  communicator_ = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD);
}

void World::abort(int exit_code) const {
  if (initialised_mpi_) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::exit(exit_code);
}

World::~World() {
  // The world communicator is an MPI object: free it while MPI still runs.
  communicator_.reset();
  if (initialised_mpi_) MPI_Finalize();
}

}  // namespace moebench::dist
