#pragma once
// The world of the MPI test binary, set up once by mpi_test_main.cpp: every
// test runs on all ranks at once and calls collectives in the same order.
#include "moebench/dist/communicator.h"

namespace moebench::dist {

Communicator& test_world();

}  // namespace moebench::dist
