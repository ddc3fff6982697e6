// The rank grid against layouts worked out by hand from Megatron-Core's
// rule (a group varies only along its kind's dims, tp fastest), and against
// the invariants every layout must keep.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <numeric>

#include "moebench/core/error.h"
#include "moebench/dist/rank_grid.h"

namespace moebench {
namespace {

using Groups = std::vector<RankGroup>;
using ::testing::HasSubstr;

RankGroup iota_group(int first, int count) {
  RankGroup ranks(count);
  std::iota(ranks.begin(), ranks.end(), first);
  return ranks;
}

Groups singletons(int world_size) {
  Groups groups;
  for (int rank = 0; rank < world_size; ++rank) groups.push_back({rank});
  return groups;
}

std::string error_of(const ParallelSizes& sizes) {
  try {
    RankGrid grid(sizes);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(RankGrid, TensorAndPipelineOnEightRanks) {
  const RankGrid grid({.world_size = 8, .tensor = 2, .pipeline = 2});
  EXPECT_EQ(grid.data_parallel_size(), 2);
  EXPECT_EQ(grid.expert_data_parallel_size(), 4);
  EXPECT_EQ(grid.groups(GroupKind::kTensor), (Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));
  EXPECT_EQ(grid.groups(GroupKind::kPipeline), (Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
  EXPECT_EQ(grid.groups(GroupKind::kData), (Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
  EXPECT_EQ(grid.groups(GroupKind::kDataWithContext), grid.groups(GroupKind::kData));
  EXPECT_EQ(grid.groups(GroupKind::kContext), singletons(8));
  EXPECT_EQ(grid.groups(GroupKind::kModel), (Groups{{0, 1, 4, 5}, {2, 3, 6, 7}}));
  EXPECT_EQ(grid.groups(GroupKind::kTensorAndDataWithContext),
            (Groups{{0, 1, 2, 3}, {4, 5, 6, 7}}));
  EXPECT_EQ(grid.groups(GroupKind::kEmbedding), grid.groups(GroupKind::kPipeline));
  EXPECT_EQ(grid.groups(GroupKind::kPositionEmbedding), (Groups{{0}, {1}, {2}, {3}}));
  // ETP 1, EP 1: the experts are replicated over all four ranks of a stage.
  EXPECT_EQ(grid.groups(GroupKind::kExpert), singletons(8));
  EXPECT_EQ(grid.groups(GroupKind::kExpertTensor), singletons(8));
  EXPECT_EQ(grid.groups(GroupKind::kExpertData), (Groups{{0, 1, 2, 3}, {4, 5, 6, 7}}));
  EXPECT_EQ(grid.groups(GroupKind::kExpertTensorExpertPipeline),
            (Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
}

TEST(RankGrid, ExpertParallelOverTheWholeWorld) {
  const RankGrid grid({.world_size = 8, .expert = 8});
  EXPECT_EQ(grid.groups(GroupKind::kExpert), (Groups{iota_group(0, 8)}));
  EXPECT_EQ(grid.groups(GroupKind::kExpertData), singletons(8));
  EXPECT_EQ(grid.groups(GroupKind::kData), (Groups{iota_group(0, 8)}));
  EXPECT_EQ(grid.groups(GroupKind::kTensor), singletons(8));
  EXPECT_EQ(grid.groups(GroupKind::kEmbedding), singletons(8));
}

TEST(RankGrid, ExpertTensorExpertAndPipelineFillSixteenRanks) {
  const RankGrid grid(
      {.world_size = 16, .tensor = 2, .expert = 4, .expert_tensor = 2, .pipeline = 2});
  EXPECT_EQ(grid.data_parallel_size(), 4);
  EXPECT_EQ(grid.expert_data_parallel_size(), 1);
  EXPECT_EQ(grid.groups(GroupKind::kData),
            (Groups{{0, 2, 4, 6}, {1, 3, 5, 7}, {8, 10, 12, 14}, {9, 11, 13, 15}}));
  EXPECT_EQ(grid.groups(GroupKind::kExpertTensor),
            (Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}, {10, 11}, {12, 13}, {14, 15}}));
  EXPECT_EQ(grid.groups(GroupKind::kExpert),
            (Groups{{0, 2, 4, 6}, {1, 3, 5, 7}, {8, 10, 12, 14}, {9, 11, 13, 15}}));
  EXPECT_EQ(grid.groups(GroupKind::kExpertTensorAndExpert),
            (Groups{iota_group(0, 8), iota_group(8, 8)}));
  EXPECT_EQ(grid.groups(GroupKind::kExpertTensorExpertPipeline), (Groups{iota_group(0, 16)}));
  EXPECT_EQ(grid.groups(GroupKind::kExpertData), singletons(16));
  EXPECT_EQ(grid.groups(GroupKind::kPipeline),
            (Groups{{0, 8}, {1, 9}, {2, 10}, {3, 11}, {4, 12}, {5, 13}, {6, 14}, {7, 15}}));
}

TEST(RankGrid, ExpertTensorOneLeavesTwoExpertDataReplicas) {
  const RankGrid grid({.world_size = 16, .tensor = 2, .expert = 4, .pipeline = 2});
  EXPECT_EQ(grid.expert_data_parallel_size(), 2);
  EXPECT_EQ(grid.groups(GroupKind::kExpert),
            (Groups{iota_group(0, 4), iota_group(4, 4), iota_group(8, 4), iota_group(12, 4)}));
  EXPECT_EQ(grid.groups(GroupKind::kExpertData),
            (Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}, {8, 12}, {9, 13}, {10, 14}, {11, 15}}));
}

TEST(RankGrid, ContextParallelSitsBetweenTensorAndData) {
  const RankGrid grid({.world_size = 16, .tensor = 2, .context = 2, .pipeline = 2});
  EXPECT_EQ(grid.groups(GroupKind::kContext),
            (Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}, {8, 10}, {9, 11}, {12, 14}, {13, 15}}));
  EXPECT_EQ(grid.groups(GroupKind::kData),
            (Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}, {8, 12}, {9, 13}, {10, 14}, {11, 15}}));
  // Within a dp_cp group cp varies faster than dp, as in the order string.
  EXPECT_EQ(grid.groups(GroupKind::kDataWithContext),
            (Groups{{0, 2, 4, 6}, {1, 3, 5, 7}, {8, 10, 12, 14}, {9, 11, 13, 15}}));
  EXPECT_EQ(grid.groups(GroupKind::kTensorAndContext),
            (Groups{iota_group(0, 4), iota_group(4, 4), iota_group(8, 4), iota_group(12, 4)}));
  EXPECT_EQ(grid.groups(GroupKind::kTensorAndDataWithContext),
            (Groups{iota_group(0, 8), iota_group(8, 8)}));
}

TEST(RankGrid, PipelineBeforeDataOrder) {
  const RankGrid grid(
      {.world_size = 8, .tensor = 2, .expert_tensor = 2, .pipeline = 2, .order = "tp-cp-ep-pp-dp"});
  EXPECT_EQ(grid.groups(GroupKind::kPipeline), (Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
  EXPECT_EQ(grid.groups(GroupKind::kData), (Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
}

TEST(RankGrid, PipelineBeforeDataNeedsEqualDataParallelSizes) {
  EXPECT_THAT(error_of({.world_size = 8, .tensor = 2, .pipeline = 2, .order = "tp-cp-ep-pp-dp"}),
              HasSubstr("(DP 2) and experts (expert-DP 4) on different ranks"));
}

TEST(RankGrid, EmbeddingGroupsHoldFirstAndLastStages) {
  const RankGrid grid({.world_size = 12, .pipeline = 3});
  EXPECT_EQ(grid.groups(GroupKind::kPipeline),
            (Groups{{0, 4, 8}, {1, 5, 9}, {2, 6, 10}, {3, 7, 11}}));
  EXPECT_EQ(grid.groups(GroupKind::kEmbedding), (Groups{{0, 8}, {1, 9}, {2, 10}, {3, 11}}));
  EXPECT_EQ(grid.membership(4, GroupKind::kEmbedding), std::nullopt);
  EXPECT_EQ(grid.membership(9, GroupKind::kPositionEmbedding), std::nullopt);
  const auto last = grid.membership(9, GroupKind::kEmbedding);
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->group_index, 1);
  EXPECT_EQ(last->rank_in_group, 1);
  EXPECT_EQ(last->ranks, (RankGroup{1, 9}));
}

TEST(RankGrid, CoordinatesOfOneRank) {
  // 13 = tp 1 + 2 * (cp 0 + 2 * (dp 1 + 2 * pp 1)) in the decoder grid and
  // ep 1 + 4 * (expert-dp 1 + 2 * pp 1) in the expert grid (ETP 1).
  const RankGrid grid({.world_size = 16, .tensor = 2, .context = 2, .expert = 4, .pipeline = 2});
  const RankCoordinates c = grid.coordinates(13);
  EXPECT_EQ(c.tensor, 1);
  EXPECT_EQ(c.context, 0);
  EXPECT_EQ(c.data, 1);
  EXPECT_EQ(c.pipeline, 1);
  EXPECT_EQ(c.expert_tensor, 0);
  EXPECT_EQ(c.expert, 1);
  EXPECT_EQ(c.expert_data, 1);
  const auto tp = grid.membership(13, GroupKind::kTensor);
  ASSERT_TRUE(tp.has_value());
  EXPECT_EQ(tp->ranks, (RankGroup{12, 13}));
  EXPECT_EQ(tp->rank_in_group, 1);
  EXPECT_EQ(tp->group_index, 6);
}

// Megatron's docstring example of generate_masked_orthogonal_rank_groups:
// sizes tp 2, dp 3, pp 4 in order tp-dp-pp, the dp groups.
TEST(OrthogonalGrid, MatchesMegatronDocstringExample) {
  using D = ParallelDim;
  const OrthogonalGrid grid({D::kTensor, D::kData, D::kPipeline, D::kContext, D::kExpert},
                            {2, 1, 1, 3, 4});
  const Groups dp = grid.groups({D::kData});
  ASSERT_EQ(dp.size(), 8u);
  EXPECT_EQ(dp[0], (RankGroup{0, 2, 4}));
  EXPECT_EQ(dp[1], (RankGroup{1, 3, 5}));
  EXPECT_EQ(dp[7], (RankGroup{19, 21, 23}));
}

// Every grid kind partitions the world: each rank in exactly one group, all
// groups of one size, and membership agreeing with the list of groups.
TEST(RankGrid, EveryKindPartitionsTheWorld) {
  const std::vector<ParallelSizes> layouts = {
      {.world_size = 1},
      {.world_size = 8, .tensor = 2, .pipeline = 2},
      {.world_size = 16, .tensor = 2, .expert = 4, .expert_tensor = 2, .pipeline = 2},
      {.world_size = 24, .tensor = 2, .context = 3, .expert = 2, .pipeline = 2},
      {.world_size = 32, .tensor = 2, .context = 2, .expert = 8, .pipeline = 2},
      {.world_size = 12, .tensor = 3, .expert_tensor = 3, .pipeline = 2, .order = "tp-cp-ep-pp-dp"},
  };
  for (const ParallelSizes& sizes : layouts) {
    const RankGrid grid(sizes);
    for (GroupKind kind : kGroupKinds) {
      SCOPED_TRACE("world " + std::to_string(sizes.world_size) + " kind " +
                   std::string(name(kind)));
      const Groups groups = grid.groups(kind);
      std::vector<int> times_seen(sizes.world_size, 0);
      for (const RankGroup& group : groups) {
        EXPECT_EQ(group.size(), groups.front().size());
        for (int rank : group) ++times_seen[rank];
      }
      const bool embedding = kind == GroupKind::kEmbedding || kind == GroupKind::kPositionEmbedding;
      for (int rank = 0; rank < sizes.world_size; ++rank) {
        const auto member = grid.membership(rank, kind);
        EXPECT_EQ(member.has_value(), times_seen[rank] == 1) << "rank " << rank;
        if (!embedding) {
          EXPECT_EQ(times_seen[rank], 1) << "rank " << rank;
        }
        if (!member) continue;
        EXPECT_EQ(member->ranks, groups[member->group_index]) << "rank " << rank;
        EXPECT_EQ(member->ranks[member->rank_in_group], rank);
      }
    }
  }
}

TEST(RankGrid, DefaultOrderPutsTensorFastestAndPipelineSlowest) {
  const ParallelSizes sizes = {
      .world_size = 48, .tensor = 2, .context = 2, .expert = 4, .pipeline = 3};
  const RankGrid grid(sizes);
  const int dp = grid.data_parallel_size();
  const int expert_dp = grid.expert_data_parallel_size();
  for (int rank = 0; rank < sizes.world_size; ++rank) {
    const RankCoordinates c = grid.coordinates(rank);
    EXPECT_EQ(rank, c.tensor + 2 * (c.context + 2 * (c.data + dp * c.pipeline)));
    EXPECT_EQ(rank, c.expert_tensor + (c.expert + 4 * (c.expert_data + expert_dp * c.pipeline)));
  }
}

TEST(RankGrid, ErrorsNameTheValuesAndTheFix) {
  EXPECT_THAT(error_of({.world_size = 12, .tensor = 2, .pipeline = 8}),
              HasSubstr("world size 12 is not divisible by TP*CP*PP = 2*1*8 = 16"));
  EXPECT_THAT(error_of({.world_size = 8, .expert = 16}),
              HasSubstr("world size 8 is not divisible by ETP*EP*PP = 1*16*1 = 16"));
  EXPECT_THAT(error_of({.world_size = 8, .tensor = 0}),
              HasSubstr("TP (tensor parallel size) is 0; it must be at least 1"));
  EXPECT_THAT(error_of({.world_size = 8, .order = "tp-cp-dp-pp"}),
              HasSubstr("names only 4 of the 5 dimensions"));
  EXPECT_THAT(error_of({.world_size = 8, .order = "tp-cp-ep-dp-xp"}),
              HasSubstr("unknown token 'xp'"));
  EXPECT_THAT(error_of({.world_size = 8, .order = "tp-cp-ep-tp-pp"}), HasSubstr("names tp twice"));
  const RankGrid grid({.world_size = 8});
  EXPECT_THROW(
      {
        try {
          grid.coordinates(8);
        } catch (const Error& e) {
          EXPECT_THAT(e.what(), HasSubstr("rank 8 is outside the world of 8 ranks"));
          throw;
        }
      },
      Error);
}

}  // namespace
}  // namespace moebench
