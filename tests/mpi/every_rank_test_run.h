#pragma once
// Runs the registered GoogleTest tests on this rank of a job whose every rank
// runs them at once. Only rank 0 prints the usual report; other ranks print
// only their failures, prefixed with their rank. Returns non-zero on every
// rank when any rank failed, so mpirun and ctest see a failure wherever it
// happened. Call after ::testing::InitGoogleTest; collective over `world`.
#include "moebench/dist/communicator.h"

namespace moebench::dist {

int run_tests_on_every_rank(Communicator& world);

}  // namespace moebench::dist
