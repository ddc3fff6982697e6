// GoogleTest main for tests that run on every rank of an mpirun job. Only
// rank 0 prints the usual report; other ranks print only their failures,
// prefixed with their rank. The exit code is non-zero on every rank when any
// rank failed, so mpirun and ctest see a failure wherever it happened.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "moebench/dist/bootstrap.h"
#include "mpi_test_world.h"

namespace moebench::dist {
namespace {

World* g_world = nullptr;

// Reports failed assertions of a rank other than 0, which has no printer.
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}

  // The test's name is kept here: UnitTest::current_test_info() takes a lock
  // that gtest holds while reporting a part result.
  void OnTestStart(const ::testing::TestInfo& test) override {
    test_name_ = std::string(test.test_suite_name()) + "." + test.name();
  }

  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s failed at %s:%d\n%s\n", rank_, test_name_.c_str(),
                 result.file_name() ? result.file_name() : "?", result.line_number(),
                 result.message());
  }

 private:
  int rank_;
  std::string test_name_;
};

}  // namespace

Communicator& test_world() { return g_world->communicator(); }

}  // namespace moebench::dist

int main(int argc, char** argv) {
  using namespace moebench;
  dist::World world(dist::identity_from_environment());
  dist::g_world = &world;
  ::testing::InitGoogleTest(&argc, argv);

  const int rank = world.communicator().rank();
  if (rank != 0) {
    ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new dist::RankFailurePrinter(rank));
  }
  const int local_failed = RUN_ALL_TESTS() != 0 ? 1 : 0;

  Tensor failed = Tensor::from_vector(std::vector<int32_t>{local_failed});
  world.communicator().all_reduce(failed, dist::ReduceOp::kMax);
  const int any_failed = failed.data<int32_t>()[0];
  if (rank == 0 && any_failed && !local_failed) {
    std::fprintf(stderr, "rank 0 passed, but another rank failed (see its [rank N] lines)\n");
  }
  return any_failed;
}
