// The mappings a GPU run accepts and the GPU each rank takes; checked on any
// machine, since the check comes before any CUDA call.
#include "moebench/train/gpu_rank_placement.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "moebench/core/error.h"

namespace moebench::train {
namespace {

using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

config::ParallelConfig data_parallel(int world_size) {
  config::ParallelConfig p;
  p.world_size = world_size;
  p.global_batch = 8;
  return p;
}

TEST(TrainGpuRankPlacement, AcceptsDataParallelismAndTheDistributedOptimizerOnOneRank) {
  EXPECT_NO_THROW(require_gpu_data_parallel_mapping(data_parallel(8)));
  config::ParallelConfig one = data_parallel(1);
  one.distributed_optimizer = true;
  EXPECT_NO_THROW(require_gpu_data_parallel_mapping(one));
}

TEST(TrainGpuRankPlacement, RejectsEveryOtherDimensionByName) {
  const auto with = [](auto set) {
    config::ParallelConfig p = data_parallel(4);
    set(p);
    return p;
  };
  const std::vector<std::pair<config::ParallelConfig, const char*>> cases = {
      {with([](auto& p) { p.tensor = 2; }), "--device cuda with TP=2"},
      {with([](auto& p) { p.pipeline = 2; }), "--device cuda with PP=2"},
      {with([](auto& p) { p.virtual_stages = 2; }), "--device cuda with VPP=2"},
      {with([](auto& p) { p.expert = 2; }), "--device cuda with EP=2"},
      {with([](auto& p) { p.context = 2; }), "--device cuda with CP=2"},
      {with([](auto& p) { p.distributed_optimizer = true; }), "--use-distributed-optimizer and DP=4"}};
  for (const auto& [mapping, message] : cases) {
    EXPECT_THAT([&] { require_gpu_data_parallel_mapping(mapping); }, ThrowsMessage<Error>(HasSubstr(message)));
    EXPECT_THAT([&] { require_gpu_data_parallel_mapping(mapping); }, ThrowsMessage<Error>(HasSubstr("--device cpu")));
  }
}

TEST(TrainGpuRankPlacement, EachRankTakesTheGpuOfItsLocalRank) {
  EXPECT_EQ(gpu_of_local_rank(0, 1), 0);
  EXPECT_EQ(gpu_of_local_rank(3, 8), 3);
  EXPECT_THAT([] { gpu_of_local_rank(2, 2); },
              ThrowsMessage<Error>(HasSubstr("local rank 2 on its machine but sees 2 GPUs")));
  EXPECT_THAT([] { gpu_of_local_rank(0, 0); }, ThrowsMessage<Error>(HasSubstr("sees 0 GPUs")));
}

}  // namespace
}  // namespace moebench::train
