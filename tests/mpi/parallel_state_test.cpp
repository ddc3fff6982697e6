// ParallelState's communicators hold exactly the ranks rank_grid lists, in
// its order: each group all-gathers its members' world ranks and compares
// them with the grid's group, for every kind, on several layouts.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "moebench/core/error.h"
#include "moebench/dist/parallel_state.h"
#include "mpi_test_world.h"

namespace moebench::dist {
namespace {

using ::testing::ElementsAreArray;

// The world ranks of `group`'s members, in the group's rank order.
RankGroup gathered_members(Communicator& group, int world_rank) {
  Tensor members = Tensor::empty({group.size()}, DType::I32);
  group.all_gather(Tensor::from_vector(std::vector<int32_t>{world_rank}), members);
  const int32_t* data = members.data<int32_t>();
  return RankGroup(data, data + group.size());
}

// Every kind: membership as rank_grid says, communicator matching it.
void expect_groups_match_grid(const ParallelSizes& sizes) {
  Communicator& world = test_world();
  const ParallelState state(world, sizes);
  const RankGrid grid(sizes);
  for (GroupKind kind : kGroupKinds) {
    SCOPED_TRACE(std::string(name(kind)));
    const std::optional<GroupMembership> expected = grid.membership(world.rank(), kind);
    ASSERT_EQ(state.is_member(kind), expected.has_value());
    if (!expected) continue;
    const GroupMembership& membership = state.membership(kind);
    EXPECT_EQ(membership.group_index, expected->group_index);
    EXPECT_EQ(membership.ranks, expected->ranks);
    Communicator& group = state.group(kind);
    EXPECT_EQ(group.rank(), expected->rank_in_group);
    EXPECT_EQ(group.size(), int(expected->ranks.size()));
    EXPECT_THAT(gathered_members(group, world.rank()), ElementsAreArray(expected->ranks));
  }
}

bool world_is(int size) { return test_world().size() == size; }

TEST(ParallelState, TensorTwoPipelineTwoOnFourRanks) {
  if (!world_is(4)) GTEST_SKIP() << "needs 4 ranks";
  const ParallelSizes sizes{.world_size = 4, .tensor = 2, .pipeline = 2};
  expect_groups_match_grid(sizes);

  // Worked by hand: tp fastest, so tp pairs are {0,1},{2,3} and pipelines
  // {0,2},{1,3}; with two stages every rank embeds (first or last stage).
  const ParallelState state(test_world(), sizes);
  const int r = test_world().rank();
  const std::vector<RankGroup> tensor = {{0, 1}, {0, 1}, {2, 3}, {2, 3}};
  const std::vector<RankGroup> pipeline = {{0, 2}, {1, 3}, {0, 2}, {1, 3}};
  EXPECT_EQ(gathered_members(state.group(GroupKind::kTensor), r), tensor[r]);
  EXPECT_EQ(gathered_members(state.group(GroupKind::kPipeline), r), pipeline[r]);
  EXPECT_EQ(gathered_members(state.group(GroupKind::kEmbedding), r), pipeline[r]);
  EXPECT_EQ(state.group(GroupKind::kData).size(), 1);
}

TEST(ParallelState, ExpertParallelOverTheWholeWorld) {
  const int n = test_world().size();
  const ParallelSizes sizes{.world_size = n, .expert = n};
  expect_groups_match_grid(sizes);

  // EP2 on 2 ranks, EP4 on 4: one expert group of everyone, and no expert
  // data parallelism; the attention part is pure data parallel.
  const ParallelState state(test_world(), sizes);
  const int r = test_world().rank();
  RankGroup everyone(n);
  for (int i = 0; i < n; ++i) everyone[i] = i;
  EXPECT_EQ(gathered_members(state.group(GroupKind::kExpert), r), everyone);
  EXPECT_EQ(gathered_members(state.group(GroupKind::kData), r), everyone);
  EXPECT_EQ(state.group(GroupKind::kExpertData).size(), 1);
}

TEST(ParallelState, ExpertTwoWithExpertDataTwoOnFourRanks) {
  if (!world_is(4)) GTEST_SKIP() << "needs 4 ranks";
  expect_groups_match_grid({.world_size = 4, .expert = 2});
  expect_groups_match_grid({.world_size = 4, .tensor = 2, .expert = 2});
  expect_groups_match_grid({.world_size = 4, .tensor = 2, .context = 2, .expert = 4});
}

TEST(ParallelState, InnerPipelineStagesHaveNoEmbeddingGroup) {
  if (!world_is(4)) GTEST_SKIP() << "needs 4 ranks";
  const ParallelSizes sizes{.world_size = 4, .pipeline = 4};
  expect_groups_match_grid(sizes);
  const ParallelState state(test_world(), sizes);
  const bool inner_stage = test_world().rank() == 1 || test_world().rank() == 2;
  EXPECT_EQ(state.is_member(GroupKind::kEmbedding), !inner_stage);
  if (inner_stage) {
    EXPECT_THROW(state.group(GroupKind::kEmbedding), Error);
  }
}

TEST(ParallelState, RejectsSizesForAnotherWorld) {
  const int n = test_world().size();
  EXPECT_THROW(ParallelState(test_world(), {.world_size = 2 * n}), Error);
}

}  // namespace
}  // namespace moebench::dist
