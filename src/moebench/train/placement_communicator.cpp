#include "moebench/train/placement_communicator.h"

#include <utility>

#include "moebench/core/error.h"
#include "moebench/dist/single_rank_communicator.h"

#ifdef MOEBENCH_WITH_CUDA
#include "moebench/dist/host_and_device_communicator.h"
#include "moebench/dist/nccl_communicator.h"
#include "moebench/ops/cuda_stream.h"
#endif

namespace moebench::train {

std::unique_ptr<dist::Communicator> communicator_for_placement(dist::Communicator& world, Device device) {
  if (world.size() == 1) return std::make_unique<dist::SingleRankCommunicator>();
  if (device.is_cpu()) return world.split(0, world.rank());
#ifdef MOEBENCH_WITH_CUDA
  // Both are collective over `world`: every rank builds them in this order.
  auto device_transport = std::make_unique<dist::NcclCommunicator>(world, device, ops::current_stream);
  std::unique_ptr<dist::Communicator> host_transport = world.split(0, world.rank());
  return std::make_unique<dist::HostAndDeviceCommunicator>(std::move(device_transport), std::move(host_transport));
#else
  throw Error("tensors on " + device.str() + " across " + std::to_string(world.size()) +
              " ranks need NCCL, and this moebench was built without CUDA; rebuild where nvcc is found or place "
              "the model on the CPU");
#endif
}

}  // namespace moebench::train
