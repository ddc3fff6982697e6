#pragma once
// The two world communicators of the GPU + MPI test binary, set up once by
// gpu_mpi_test_main.cpp (one process per GPU): MPI over CPU tensors, and NCCL
// over the same ranks on this rank's GPU (cuda:<local rank>). Every test runs
// on all ranks at once and calls collectives in the same order.
#include "moebench/dist/communicator.h"
#include "moebench/dist/nccl_communicator.h"

namespace moebench::dist {

Communicator& mpi_world();
NcclCommunicator& nccl_world();

}  // namespace moebench::dist
