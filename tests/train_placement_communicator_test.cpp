// communicator_for_placement on one rank: no transport on any device, so a
// one-rank run needs neither MPI nor NCCL (the MPI and GPU + MPI suites check
// several ranks).
#include <gtest/gtest.h>

#include "moebench/dist/single_rank_communicator.h"
#include "moebench/train/placement_communicator.h"

namespace moebench::train {
namespace {

TEST(PlacementCommunicator, OneRankNeedsNoTransportOnAnyDevice) {
  dist::SingleRankCommunicator world;
  for (Device device : {Device::cpu(), Device::cuda(0)}) {
    const std::unique_ptr<dist::Communicator> communicator = communicator_for_placement(world, device);
    EXPECT_NE(dynamic_cast<dist::SingleRankCommunicator*>(communicator.get()), nullptr) << device.str();
  }
}

}  // namespace
}  // namespace moebench::train
