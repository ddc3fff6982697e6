// GoogleTest main of the GPU + MPI tests, one process per GPU under mpirun
// (run_gpu_mpi.sh). `--visible-gpus` prints how many GPUs this process sees
// and exits, without MPI: the script asks it before launching the ranks.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string_view>

#include "../mpi/every_rank_test_run.h"
#include "gpu_mpi_test_world.h"
#include "moebench/core/cuda_allocator.h"
#include "moebench/core/cuda_check.h"
#include "moebench/dist/bootstrap.h"
#include "moebench/ops/cuda_stream.h"

namespace moebench::dist {
namespace {

World* g_world = nullptr;
NcclCommunicator* g_nccl = nullptr;

}  // namespace

Communicator& mpi_world() { return g_world->communicator(); }
NcclCommunicator& nccl_world() { return *g_nccl; }

}  // namespace moebench::dist

int main(int argc, char** argv) {
  using namespace moebench;
  if (argc == 2 && std::string_view(argv[1]) == "--visible-gpus") {
    int gpus = 0;
    if (cudaGetDeviceCount(&gpus) != cudaSuccess) gpus = 0;
    std::printf("%d\n", gpus);
    return 0;
  }
  const dist::ProcessIdentity identity = dist::identity_from_environment();
  dist::World world(identity);
  ::testing::InitGoogleTest(&argc, argv);
  MOEBENCH_CUDA_CHECK(cudaSetDevice(identity.local_rank));
  enable_cuda_tensors();
  // Destroyed before the world, whose MPI it was bootstrapped over.
  dist::NcclCommunicator nccl(world.communicator(), Device::cuda(identity.local_rank), ops::current_stream);
  dist::g_world = &world;
  dist::g_nccl = &nccl;
  return dist::run_tests_on_every_rank(world.communicator());
}
