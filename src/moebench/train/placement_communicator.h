#pragma once
// The communicator of all ranks for tensors placed on one device: the one
// ParallelState splits into the parallel groups, so its transport follows
// the model's placement (as Megatron's process groups follow their backend).
#include <memory>

#include "moebench/core/tensor.h"
#include "moebench/dist/communicator.h"

namespace moebench::train {

// Collective over `world` (dist::World::communicator(): MPI, or one rank).
//   one rank  a SingleRankCommunicator: no transport, neither MPI nor NCCL
//   CPU       MPI, a copy of `world`
//   CUDA      a HostAndDeviceCommunicator: NCCL on `device` (this rank's GPU,
//             made current by the caller, queued on ops::current_stream())
//             for device tensors and MPI, a copy of `world`, for the host
//             tensors (losses, norms, token counts) of the same groups; CUDA
//             builds only
std::unique_ptr<dist::Communicator> communicator_for_placement(dist::Communicator& world, Device device);

}  // namespace moebench::train
