// communicator_for_placement on several CPU ranks: MPI, a copy of the world
// with its ranks in order. (CUDA placement is NCCL: tests/gpu_mpi.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "moebench/core/error.h"
#include "moebench/dist/mpi_communicator.h"
#include "moebench/train/placement_communicator.h"
#include "mpi_test_world.h"

namespace moebench::dist {
namespace {

TEST(PlacementCommunicator, CpuPlacementIsMpiOverTheSameRanks) {
  Communicator& world = test_world();
  const std::unique_ptr<Communicator> placed = train::communicator_for_placement(world, Device::cpu());
  ASSERT_NE(dynamic_cast<MpiCommunicator*>(placed.get()), nullptr);
  EXPECT_EQ(placed->rank(), world.rank());
  EXPECT_EQ(placed->size(), world.size());
  Tensor ranks = Tensor::from_vector(std::vector<int64_t>{world.rank()});
  placed->all_reduce(ranks, ReduceOp::kSum);
  EXPECT_EQ(ranks.data<int64_t>()[0], int64_t(world.size()) * (world.size() - 1) / 2);
}

#ifndef MOEBENCH_WITH_CUDA
TEST(PlacementCommunicator, GpuPlacementOnSeveralRanksNeedsACudaBuild) {
  EXPECT_THAT([] { train::communicator_for_placement(test_world(), Device::cuda(0)); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("built without CUDA")));
}
#endif

}  // namespace
}  // namespace moebench::dist
