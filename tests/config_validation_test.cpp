// config::validate: one test per rule. Each starts from a valid setup and
// breaks one thing, and checks that the Error names the values involved.
#include "moebench/config/validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "moebench/config/moe_layer_freq.h"
#include "moebench/core/error.h"

namespace moebench::config {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// DeepSeek-V2-Lite as the zoo gives it: 27 layers (the first dense), hidden
// 2048, 16 heads of MLA, 64 experts top-6, sequence 4096.
ModelConfig deepseek_v2_lite() {
  ModelConfig m;
  m.num_layers = 27;
  m.hidden_size = 2048;
  m.ffn_hidden_size = 10944;
  m.num_attention_heads = 16;
  m.num_query_groups = 16;
  m.kv_channels = 128;
  m.seq_length = 4096;
  m.vocab_size = m.padded_vocab_size = 102400;
  m.multi_latent_attention = true;
  m.moe.num_experts = 64;
  m.moe.ffn_hidden_size = 1408;
  m.moe.topk = 6;
  m.moe.shared_expert_size = 2816;
  m.moe.is_moe_layer = parse_moe_layer_freq("([0]+[1]*26)", 27);
  return m;
}

// The guide's DeepSeek-V2-Lite row: one node of 8 GPUs, TP1 PP1 EP8, MBS 1, GBS 512.
ParallelConfig deepseek_v2_lite_row() {
  ParallelConfig p;
  p.world_size = 8;
  p.expert = 8;
  p.micro_batch = 1;
  p.global_batch = 512;
  p.sequence_parallel = true;
  p.distributed_optimizer = true;
  return p;
}

// DeepSeek-V2: 60 layers, 128 heads, 160 experts; its row is 32 nodes, PP16
// with 2 layers on the first and last stages, VPP 2, EP 8, GBS 1024.
ModelConfig deepseek_v2() {
  ModelConfig m = deepseek_v2_lite();
  m.num_layers = 60;
  m.hidden_size = 5120;
  m.num_attention_heads = m.num_query_groups = 128;
  m.moe.num_experts = 160;
  m.moe.num_groups = 8;
  m.moe.group_topk = 3;
  m.moe.is_moe_layer = parse_moe_layer_freq("([0]+[1]*59)", 60);
  return m;
}

ParallelConfig deepseek_v2_row() {
  ParallelConfig p;
  p.world_size = 256;
  p.pipeline = 16;
  p.virtual_stages = 2;
  p.first_stage_layers = 2;
  p.last_stage_layers = 2;
  p.expert = 8;
  p.global_batch = 1024;
  return p;
}

// Qwen2-57B-A14B: GQA with 28 heads in 4 groups.
ModelConfig qwen2_57b() {
  ModelConfig m;
  m.num_layers = 28;
  m.hidden_size = 3584;
  m.ffn_hidden_size = 2560;
  m.num_attention_heads = 28;
  m.num_query_groups = 4;
  m.kv_channels = 128;
  m.seq_length = 4096;
  m.moe.num_experts = 64;
  m.moe.ffn_hidden_size = 2560;
  m.moe.topk = 8;
  m.moe.is_moe_layer.assign(28, true);
  return m;
}

std::string error_of(const ModelConfig& m, const ParallelConfig& p) {
  try {
    validate(m, p);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Validation, StartingPointsAreValid) {
  EXPECT_NO_THROW(validate(deepseek_v2_lite(), deepseek_v2_lite_row()));
  EXPECT_NO_THROW(validate(deepseek_v2(), deepseek_v2_row()));
  ParallelConfig qwen = deepseek_v2_lite_row();  // the guide's Qwen2 row: 8 nodes TP2 PP4 EP4 VPP7, GBS 256
  qwen.world_size = 64, qwen.tensor = 2, qwen.pipeline = 4, qwen.expert = 4, qwen.virtual_stages = 7;
  qwen.global_batch = 256;
  EXPECT_NO_THROW(validate(qwen2_57b(), qwen));
}

TEST(Validation, SizesAtLeastOne) {
  ParallelConfig p = deepseek_v2_lite_row();
  p.micro_batch = 0;
  EXPECT_THAT(error_of(deepseek_v2_lite(), p), HasSubstr("MBS=0 must be at least 1"));
  p = deepseek_v2_lite_row();
  p.tensor = -2;
  EXPECT_THAT(error_of(deepseek_v2_lite(), p), HasSubstr("TP=-2 must be at least 1"));
}

TEST(Validation, WorldDivisibleByTpPpCp) {
  ParallelConfig p = deepseek_v2_lite_row();
  p.pipeline = 3;
  EXPECT_THAT(error_of(deepseek_v2_lite(), p),
              AllOf(HasSubstr("world size 8"), HasSubstr("not divisible"), HasSubstr("TP=1"), HasSubstr("PP=3"),
                    HasSubstr("CP=1")));
  p = deepseek_v2_lite_row();
  p.context = 16;
  EXPECT_THAT(error_of(deepseek_v2_lite(), p), AllOf(HasSubstr("world size 8"), HasSubstr("CP=16")));
}

// The guide's example of a bad mapping: TP=3 for DeepSeek-V2-Lite. On its one
// node the world of 8 does not split into TP 3; on three nodes it does, and
// the 16 attention heads are what cannot be split.
TEST(Validation, GuideExampleTp3DeepSeekV2LiteFails) {
  ParallelConfig p = deepseek_v2_lite_row();
  p.tensor = 3;
  EXPECT_THAT(error_of(deepseek_v2_lite(), p), AllOf(HasSubstr("world size 8"), HasSubstr("TP=3")));
  p.world_size = 24;  // DP 8: GBS 512 still divides, EP 8 divides the 24 ranks
  EXPECT_THAT(error_of(deepseek_v2_lite(), p), HasSubstr("num-attention-heads 16 is not divisible by TP=3"));
}

TEST(Validation, ExpertGridDividesTheStageRanks) {
  ParallelConfig p = deepseek_v2_lite_row();
  p.world_size = 16, p.pipeline = 2, p.expert = 16;  // 8 ranks per stage cannot hold EP 16
  EXPECT_THAT(error_of(deepseek_v2_lite(), p),
              AllOf(HasSubstr("EP=16"), HasSubstr("expert-TP=1"), HasSubstr("does not divide the 8 ranks")));
  p = deepseek_v2_lite_row();
  p.expert = 4, p.expert_tensor = 4;
  EXPECT_THAT(error_of(deepseek_v2_lite(), p), AllOf(HasSubstr("EP=4"), HasSubstr("expert-TP=4"), HasSubstr("does not divide the 8 ranks")));
  p.expert_tensor = 2;  // 4 x 2 = 8 fits the grid, but experts are never tensor-split
  EXPECT_THAT(error_of(deepseek_v2_lite(), p),
              AllOf(HasSubstr("--expert-tensor-parallel-size 2"), HasSubstr("set --expert-tensor-parallel-size 1")));
  p.expert_tensor = 1;
  EXPECT_EQ(error_of(deepseek_v2_lite(), p), "");
}

TEST(Validation, ExpertsDivisibleByEp) {
  ParallelConfig p = deepseek_v2_lite_row();
  ModelConfig m = deepseek_v2_lite();
  m.moe.num_experts = 60;
  EXPECT_THAT(error_of(m, p), HasSubstr("num-experts 60 is not divisible by EP=8"));
}

TEST(Validation, DenseModelNeedsEpOne) {
  ModelConfig m = deepseek_v2_lite();
  m.moe.num_experts = 0;
  m.moe.is_moe_layer.assign(27, false);
  ParallelConfig p = deepseek_v2_lite_row();
  EXPECT_THAT(error_of(m, p), HasSubstr("EP=8 needs a MoE model, but num-experts is 0"));
  p.expert = 1;
  EXPECT_EQ(error_of(m, p), "");
}

TEST(Validation, GlobalBatchDivisibleByMbsTimesDp) {
  ParallelConfig p = deepseek_v2_lite_row();
  p.global_batch = 36;
  EXPECT_THAT(error_of(deepseek_v2_lite(), p), HasSubstr("GBS=36 is not divisible by MBS x DP = 1 x 8"));
  p.global_batch = 512, p.micro_batch = 3;
  EXPECT_THAT(error_of(deepseek_v2_lite(), p), HasSubstr("GBS=512 is not divisible by MBS x DP = 3 x 8"));
}

TEST(Validation, HeadsDivisibleByTp) {
  ParallelConfig p = deepseek_v2_lite_row();
  ModelConfig m = deepseek_v2_lite();
  m.num_attention_heads = m.num_query_groups = 12;
  p.tensor = 8;  // world 8 = TP 8, DP 1, GBS 512 fine
  EXPECT_THAT(error_of(m, p), HasSubstr("num-attention-heads 12 is not divisible by TP=8"));
}

TEST(Validation, HeadsDivisibleByQueryGroups) {
  ModelConfig m = qwen2_57b();
  m.num_query_groups = 3;
  ParallelConfig p = deepseek_v2_lite_row();
  EXPECT_THAT(error_of(m, p), HasSubstr("num-attention-heads 28 is not divisible by num-query-groups 3"));
}

TEST(Validation, QueryGroupsDivisibleByTp) {
  // 28 heads split over TP 7, but 4 key/value groups do not.
  ModelConfig m = qwen2_57b();
  ParallelConfig p = deepseek_v2_lite_row();
  p.world_size = 56, p.tensor = 7, p.expert = 4;
  EXPECT_THAT(error_of(m, p), HasSubstr("num-query-groups 4 is not divisible by TP=7"));
  // MLA has no key/value groups to split, so the rule does not apply to it.
  ModelConfig mla = deepseek_v2_lite();
  mla.num_query_groups = 1;
  ParallelConfig two = deepseek_v2_lite_row();
  two.tensor = 2;
  EXPECT_EQ(error_of(mla, two), "");
}

TEST(Validation, LayersDivisibleByPpWithoutUnevenStages) {
  ParallelConfig p = deepseek_v2_lite_row();
  p.pipeline = 2, p.expert = 4;  // 27 layers on 2 stages
  EXPECT_THAT(error_of(deepseek_v2_lite(), p),
              HasSubstr("num-layers 27 is not divisible by PP=2; set PP_FIRST and PP_LAST"));
}

TEST(Validation, DeepSeekV2UnevenTwoTwoIsValid) {
  // 60 = 2 + 14 x 4 + 2.
  ParallelConfig p = deepseek_v2_row();
  EXPECT_EQ(error_of(deepseek_v2(), p), "");
  EXPECT_EQ(p.layers_per_stage(60), (std::vector<int>{2, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 2}));
}

TEST(Validation, DeepSeekV2UnevenThreeTwoIsInvalid) {
  // 60 - 3 - 2 = 55 layers over 14 middle stages.
  ParallelConfig p = deepseek_v2_row();
  p.first_stage_layers = 3;
  p.virtual_stages = 1;
  EXPECT_THAT(error_of(deepseek_v2(), p),
              HasSubstr("num-layers 60 with PP=16, PP_FIRST=3, PP_LAST=2: the remaining 55 layers do not split "
                        "evenly over the 14 middle stages"));
}

TEST(Validation, UnevenEdgeCases) {
  ModelConfig m = deepseek_v2_lite();
  ParallelConfig p = deepseek_v2_lite_row();
  p.first_stage_layers = 13;  // uneven needs PP >= 2
  EXPECT_THAT(error_of(m, p), HasSubstr("PP_FIRST/PP_LAST need PP >= 2, got PP=1"));

  p.world_size = 16, p.pipeline = 2, p.last_stage_layers = 13;  // 13 + 13 != 27
  EXPECT_THAT(error_of(m, p), HasSubstr("PP_FIRST=13, PP_LAST=13: the two stages must hold all layers"));
  p.last_stage_layers = 14;
  EXPECT_EQ(error_of(m, p), "");

  // Only the first stage given: 27 = 3 + 3 x 8 over PP 4.
  p = deepseek_v2_lite_row();
  p.world_size = 32, p.pipeline = 4, p.first_stage_layers = 3;
  EXPECT_EQ(error_of(m, p), "");
  EXPECT_EQ(p.layers_per_stage(27), (std::vector<int>{3, 8, 8, 8}));
  // Edges taking every layer leave the middle stages empty.
  p.first_stage_layers = 20, p.last_stage_layers = 7;
  EXPECT_THAT(error_of(m, p), HasSubstr("the remaining 0 layers do not split evenly over the 2 middle stages"));
}

TEST(Validation, VppDividesEveryStage) {
  ParallelConfig p = deepseek_v2_row();
  p.virtual_stages = 4;  // the middle stages hold 4 layers, the first and last 2
  EXPECT_THAT(error_of(deepseek_v2(), p), HasSubstr("pipeline stage 0 holds 2 layers, not divisible by VPP=4"));

  // 60 = 16 + 15 + 15 + 14 on PP 4: VPP 2 fits the first and last stages, not the middle ones.
  p = deepseek_v2_row();
  p.world_size = 64, p.pipeline = 4, p.first_stage_layers = 16, p.last_stage_layers = 14;
  EXPECT_THAT(error_of(deepseek_v2(), p), HasSubstr("pipeline stage 1 holds 15 layers, not divisible by VPP=2"));
  // Evenly, 15 layers per stage: VPP 3 divides them, VPP 2 does not.
  p.first_stage_layers = p.last_stage_layers = 0;
  p.virtual_stages = 3;
  EXPECT_EQ(error_of(deepseek_v2(), p), "");
  p.virtual_stages = 2;
  EXPECT_THAT(error_of(deepseek_v2(), p), HasSubstr("pipeline stage 0 holds 15 layers, not divisible by VPP=2"));
}

TEST(Validation, VppNeedsPipeline) {
  ParallelConfig p = deepseek_v2_lite_row();
  p.virtual_stages = 3;  // 27 % 3 == 0, but there is only one stage
  EXPECT_THAT(error_of(deepseek_v2_lite(), p), HasSubstr("VPP=3 needs PP > 1"));
}

TEST(Validation, SequenceDivisibleByTpWithSequenceParallel) {
  ModelConfig m = deepseek_v2_lite();
  m.seq_length = 4097;
  ParallelConfig p = deepseek_v2_lite_row();
  p.tensor = 2;
  EXPECT_THAT(error_of(m, p), HasSubstr("seq-length 4097 is not divisible by TP=2 (sequence parallel"));
  p.sequence_parallel = false;  // the sequence is not split, but MoE with TP needs SP, as in Megatron
  EXPECT_THAT(error_of(m, p), HasSubstr("MoE with TP=2 needs sequence parallelism"));
  m.moe.num_experts = 0;  // dense: TP without SP is fine
  m.moe.is_moe_layer.assign(size_t(m.num_layers), false);
  p.expert = 1;
  EXPECT_EQ(error_of(m, p), "");
}

TEST(Validation, SequenceDivisibleByTwiceCp) {
  ModelConfig m = deepseek_v2_lite();
  m.seq_length = 4098;  // divisible by 2, not by 4
  ParallelConfig p = deepseek_v2_lite_row();
  p.context = 2;
  EXPECT_THAT(error_of(m, p), HasSubstr("seq-length 4098 is not divisible by 2 x CP = 4"));
  p.context = 1;
  EXPECT_EQ(error_of(m, p), "");
}

TEST(Validation, RouterTopkWithinExperts) {
  ModelConfig m = deepseek_v2_lite();
  m.moe.topk = 65;
  EXPECT_THAT(error_of(m, deepseek_v2_lite_row()), HasSubstr("moe-router-topk 65 must be between 1 and num-experts 64"));
  m.moe.topk = 0;
  EXPECT_THAT(error_of(m, deepseek_v2_lite_row()), HasSubstr("moe-router-topk 0 must be between 1"));
}

TEST(Validation, RouterGroupRules) {
  ModelConfig m = deepseek_v2();
  m.moe.num_groups = 7;  // 160 experts in 7 groups
  EXPECT_THAT(error_of(m, deepseek_v2_row()), HasSubstr("num-experts 160 is not divisible by moe-router-num-groups 7"));

  m = deepseek_v2();
  m.moe.group_topk = 9;
  EXPECT_THAT(error_of(m, deepseek_v2_row()),
              HasSubstr("moe-router-group-topk 9 must be between 1 and moe-router-num-groups 8"));
  m.moe.group_topk = 0;
  EXPECT_THAT(error_of(m, deepseek_v2_row()), HasSubstr("moe-router-group-topk 0 must be between 1"));

  // 3 groups of 20 experts hold 60; top-6 fits, top-61 does not.
  m = deepseek_v2();
  m.moe.topk = 61;
  EXPECT_THAT(error_of(m, deepseek_v2_row()), HasSubstr("moe-router-topk 61 exceeds the experts of the 3 selected groups"));
  m.moe.topk = 60;
  EXPECT_EQ(error_of(m, deepseek_v2_row()), "");
}

TEST(Validation, WgradMicrobatchesAtLeastOneAndOnTheGroupedExperts) {
  ModelConfig m = deepseek_v2_lite();
  for (int n : {0, -1}) {
    m.moe.wgrad_microbatches = n;
    EXPECT_THAT(error_of(m, deepseek_v2_lite_row()),
                HasSubstr("--moe-wgrad-microbatches " + std::to_string(n) + " must be at least 1"));
  }
  m.moe.wgrad_microbatches = 2;
  EXPECT_THAT(error_of(m, deepseek_v2_lite_row()),
              AllOf(HasSubstr("--moe-wgrad-microbatches 2 batches the weight gradients of the grouped experts only"),
                    HasSubstr("add --moe-grouped-gemm")));
  m.moe.grouped_gemm = true;
  EXPECT_EQ(error_of(m, deepseek_v2_lite_row()), "");
  // More than the microbatches of a step is allowed: each step adds what it kept at its end.
  m.moe.wgrad_microbatches = 1000;
  EXPECT_EQ(error_of(m, deepseek_v2_lite_row()), "");
}

}  // namespace
}  // namespace moebench::config
