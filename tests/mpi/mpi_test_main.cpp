// GoogleTest main for tests that run on every rank of an mpirun job (see
// every_rank_test_run.h for what each rank prints and returns).
#include <gtest/gtest.h>

#include "every_rank_test_run.h"
#include "moebench/dist/bootstrap.h"
#include "mpi_test_world.h"

namespace moebench::dist {
namespace {

World* g_world = nullptr;

}  // namespace

Communicator& test_world() { return g_world->communicator(); }

}  // namespace moebench::dist

int main(int argc, char** argv) {
  using namespace moebench;
  dist::World world(dist::identity_from_environment());
  dist::g_world = &world;
  ::testing::InitGoogleTest(&argc, argv);
  return dist::run_tests_on_every_rank(world.communicator());
}
