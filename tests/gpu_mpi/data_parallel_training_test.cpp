// Data parallelism on GPUs, one rank per GPU: tiny-mixtral trained for
// kZooIterations on all ranks (DP = 2, 4 or 8, as many as the run has) logs
// the losses and gradient norms of the same training on one GPU, and ends
// with the same fp32 main weights, within bf16 tolerance (the ranks sum their
// gradients in another order than one GPU accumulates them, and each step's
// bf16 compute copy may round the other way). Groups move device tensors
// over NCCL and host scalars over MPI (HostAndDeviceCommunicator), as
// `moebench run --device cuda` builds them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

#include "../mpi/zoo_training.h"
#include "gpu_mpi_test_world.h"
#include "moebench/core/error.h"
#include "moebench/dist/single_rank_communicator.h"
#include "moebench/train/placement_communicator.h"

namespace moebench::train {
namespace {

// Relative to the one-GPU run: bf16 compute, 3 Adam steps.
constexpr double kBf16Tolerance = 2e-2;

TEST(GpuDataParallelTraining, TinyMixtralOnEveryRankMatchesOneGpu) {
  const Device gpu = dist::nccl_world().device();
  const ZooRun run{.model = "tiny-mixtral", .device = gpu};
  const std::unique_ptr<dist::Communicator> world = communicator_for_placement(dist::mpi_world(), gpu);
  const ZooOutcome parallel = train_zoo_model(*world, run);
  dist::SingleRankCommunicator one_gpu;
  const ZooOutcome reference = train_zoo_model(one_gpu, run.one_rank());
  const ZooDifferences worst = expect_matches_one_rank(parallel, reference, kBf16Tolerance);
  if (world->rank() == 0)
    std::printf("DP=%d on GPUs vs one GPU, largest relative difference: loss %.1e, grad norm %.1e, weight %.1e\n",
                world->size(), worst.loss, worst.grad_norm, worst.weight);
}

TEST(GpuDataParallelTraining, TheDistributedOptimizerIsRejectedBeforeTraining) {
  const Device gpu = dist::nccl_world().device();
  const ZooRun run{.model = "tiny-mixtral", .distributed_optimizer = true, .device = gpu};
  const std::unique_ptr<dist::Communicator> world = communicator_for_placement(dist::mpi_world(), gpu);
  EXPECT_THAT([&] { train_zoo_model(*world, run); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("--use-distributed-optimizer")));
}

}  // namespace
}  // namespace moebench::train
