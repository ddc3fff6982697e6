#include "every_rank_test_run.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace moebench::dist {
namespace {

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

int run_tests_on_every_rank(Communicator& world) {
  const int rank = world.rank();
  if (rank != 0) {
    ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
  }
  const int local_failed = RUN_ALL_TESTS() != 0 ? 1 : 0;

  Tensor failed = Tensor::from_vector(std::vector<int32_t>{local_failed});
  world.all_reduce(failed, ReduceOp::kMax);
  const int any_failed = failed.data<int32_t>()[0];
  if (rank == 0 && any_failed && !local_failed) {
    std::fprintf(stderr, "rank 0 passed, but another rank failed (see its [rank N] lines)\n");
  }
  return any_failed;
}

}  // namespace moebench::dist
