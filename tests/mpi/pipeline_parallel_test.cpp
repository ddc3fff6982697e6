// Pipeline parallelism is exact: the ranks of the test world, each building
// its pipeline stage only (and its ep rank's experts, and training on its
// data-parallel share), log the losses and gradient norms of one rank
// training the whole model on the whole global batch, and each ends with the
// one-rank weights of the parameters it holds; the stages together hold
// every parameter once. Covered: 1F1B (PP2), the interleaved schedule
// (PP2 x VPP2, also with uneven stages), uneven PP3 with PP_FIRST/PP_LAST,
// PP2 x DP2 with the distributed optimizer, expert-bias updates per stage,
// DeepSeek-style layers (MLA, shared experts, a dense first layer) under
// EP2 x PP2, and tensor parallelism with sequence parallelism under PP:
// TP2 x PP2 on 4 ranks (1F1B and interleaved, both optimizers, and without
// SP on a dense model) and TP2 x EP2 x PP2 x DP2 on 8 (Mixtral with plain
// Adam; DeepSeek interleaved with the distributed optimizer). The routed
// experts' weight gradients batched over micro-batches
// (--moe-wgrad-microbatches, N not dividing them) are flushed on every stage
// and model chunk (PP2 x VPP2, EP2 x PP2). A bad mapping stops at validation,
// before any communication.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <ostream>
#include <string>

#include "moebench/config/model_config.h"
#include "moebench/config/resolve.h"
#include "moebench/config/validation.h"
#include "moebench/core/error.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/dist/single_rank_communicator.h"
#include "mpi_test_world.h"
#include "zoo_training.h"

namespace moebench::train {
namespace {

struct PipelineCase {
  std::string name;
  int ranks;  // the world size the case is meant for; other worlds skip it
  ZooRun run;
};

void PrintTo(const PipelineCase& c, std::ostream* os) { *os << c.name; }

class PipelineParallelTraining : public ::testing::TestWithParam<PipelineCase> {};

// This rank's dense and expert parameter counts, summed over the ranks of `group`.
std::pair<int64_t, int64_t> counts_over(dist::Communicator& group, const ZooOutcome& outcome) {
  const int64_t experts =
      std::ranges::count_if(outcome.weights, [](const model::Parameter& p) { return p.is_expert; });
  Tensor counts = Tensor::from_vector(std::vector<int64_t>{int64_t(outcome.weights.size()) - experts, experts});
  group.all_reduce(counts, dist::ReduceOp::kSum);
  return {counts.data<int64_t>()[0], counts.data<int64_t>()[1]};
}

TEST_P(PipelineParallelTraining, MatchesOneRankOnTheSameGlobalBatch) {
  dist::Communicator& world = dist::test_world();
  const PipelineCase& c = GetParam();
  if (world.size() != c.ranks) GTEST_SKIP() << c.name << " runs on " << c.ranks << " ranks";
  const ZooOutcome parallel = train_zoo_model(world, c.run);
  dist::SingleRankCommunicator one_rank;
  const ZooOutcome reference = train_zoo_model(one_rank, c.run.one_rank());

  const ZooDifferences worst = expect_matches_one_rank(parallel, reference);
  // One data-parallel replica's ranks (a pp group x an ep group) hold every
  // parameter once: each stage its layers (gathered over tp), each ep rank its experts.
  const dist::ParallelState state(world, {.world_size = world.size(),
                                          .tensor = c.run.tensor_parallel,
                                          .expert = c.run.expert_parallel,
                                          .pipeline = c.run.pipeline});
  const auto [stage_dense, stage_experts] = counts_over(state.group(GroupKind::kPipeline), parallel);
  const int64_t reference_experts =
      std::ranges::count_if(reference.weights, [](const model::Parameter& p) { return p.is_expert; });
  EXPECT_EQ(stage_dense, int64_t(reference.weights.size()) - reference_experts);
  EXPECT_EQ(stage_experts * c.run.expert_parallel, reference_experts);
  if (world.rank() == 0)
    std::printf("[ info ] %s vs 1 rank: largest relative difference of losses %.2e, grad norms %.2e, weights %.2e\n",
                c.name.c_str(), worst.loss, worst.grad_norm, worst.weight);
}

ZooRun pipelined(const std::string& model, int layers, int pipeline, int virtual_stages = 1, int first = 0,
                 int last = 0) {
  return {.model = model,
          .pipeline = pipeline,
          .virtual_stages = virtual_stages,
          .first_stage_layers = first,
          .last_stage_layers = last,
          .num_layers = layers};
}

// A tiny DeepSeek model with `layers` layers: the first dense, as DeepSeek's
// first_k_dense_replace, the rest MoE.
ZooRun deepseek(const std::string& model, int layers, int pipeline, int virtual_stages = 1, int first = 0,
                int last = 0) {
  ZooRun run = pipelined(model, layers, pipeline, virtual_stages, first, last);
  run.flags = {"--moe-layer-freq", "([0]+[1]*" + std::to_string(layers - 1) + ")"};
  return run;
}

// The experts' weight gradients of 3 micro-batches at a time, which divides
// neither a step's 8 micro-batches (DP1) nor its 4 (DP2): the trainer
// flushes the remainder.
ZooRun with_wgrad_microbatches(ZooRun run) {
  run.flags.insert(run.flags.end(), {"--moe-wgrad-microbatches", "3"});
  return run;
}

ZooRun with_distributed_optimizer(ZooRun run) {
  run.distributed_optimizer = true;
  return run;
}

ZooRun with_expert_parallel(ZooRun run, int expert_parallel, const std::string& dispatcher) {
  run.expert_parallel = expert_parallel;
  run.dispatcher = dispatcher;
  return run;
}

// TP2, sequence-parallel (the zoo configs' setting): the activations between
// stages are each tp rank's half of the tokens.
ZooRun with_tensor_parallel(ZooRun run) {
  run.tensor_parallel = 2;
  return run;
}

// TP2 without sequence parallelism, on the model's dense variant: every tp
// rank passes on all the tokens.
ZooRun with_dense_tensor_parallel(ZooRun run) {
  run.tensor_parallel = 2;
  run.sequence_parallel = false;
  run.flags = kZooDenseFlags;
  return run;
}

INSTANTIATE_TEST_SUITE_P(
    ZooModels, PipelineParallelTraining,
    ::testing::Values(
        // 1F1B: stage 0 embeds and holds layers 0-1, stage 1 layers 2-3 and the loss.
        PipelineCase{"pp2", 2, pipelined("tiny-mixtral", 4, 2)},
        // Interleaved: stage 0 holds layers 0 and 2, stage 1 layers 1 and 3.
        PipelineCase{"pp2_vpp2", 2, pipelined("tiny-mixtral", 4, 2, 2)},
        // Interleaved with uneven stages: stage 0 holds 0 and 3, stage 1 1-2 and 4-5.
        PipelineCase{"pp2_vpp2_first2_last4", 2, pipelined("tiny-qwen3-moe", 6, 2, 2, 2, 4)},
        PipelineCase{"pp2_vpp2_wgrad_microbatches", 2, with_wgrad_microbatches(pipelined("tiny-mixtral", 4, 2, 2))},
        // Aux-loss-free routing: each stage moves its own layers' expert biases.
        PipelineCase{"deepseek_v3_pp2_expert_bias", 2,
                     with_distributed_optimizer(deepseek("tiny-deepseek-v3", 4, 2))},
        // Uneven: 1 layer on the first stage, 3 in the middle, 1 on the last.
        PipelineCase{"pp3_first1_last1", 3, deepseek("tiny-deepseek-v2", 5, 3, 1, 1, 1)},
        // Each stage's gradients reduce-scattered over its data-parallel pair.
        PipelineCase{"pp2_dp2_distributed_optimizer", 4,
                     with_distributed_optimizer(pipelined("tiny-mixtral", 4, 2))},
        // MLA, shared experts and the dense first layer on stage 0; the experts
        // of each stage split over its two ranks; plain Adam's gradient norm.
        PipelineCase{"deepseek_ep2_pp2_alltoall", 4,
                     with_expert_parallel(deepseek("tiny-deepseek-v2", 4, 2), 2, "alltoall")},
        PipelineCase{"deepseek_ep2_pp2_alltoall_wgrad_microbatches", 4,
                     with_wgrad_microbatches(with_expert_parallel(deepseek("tiny-deepseek-v2", 4, 2), 2, "alltoall"))},
        PipelineCase{"deepseek_ep2_pp2_vpp2_allgather_distributed_optimizer", 4,
                     with_distributed_optimizer(
                         with_expert_parallel(deepseek("tiny-deepseek-v2", 4, 2, 2), 2, "allgather"))},
        // The vocabulary-parallel embedding on stage 0, output layer and
        // cross-entropy on stage 1; the gradient norms count each stage's
        // tp-replicated norms once, with either optimizer.
        PipelineCase{"tp2_pp2", 4, with_tensor_parallel(pipelined("tiny-mixtral", 4, 2))},
        PipelineCase{"tp2_pp2_vpp2_distributed_optimizer", 4,
                     with_distributed_optimizer(with_tensor_parallel(pipelined("tiny-mixtral", 4, 2, 2)))},
        PipelineCase{"tp2_pp2_dense_without_sequence_parallel", 4,
                     with_dense_tensor_parallel(pipelined("tiny-qwen3-moe", 4, 2))},
        // Every parallelism of the CPU engine at once: tp pairs, ep groups over
        // them, two stages and two data-parallel replicas.
        PipelineCase{"tp2_ep2_pp2_alltoall", 8,
                     with_tensor_parallel(with_expert_parallel(pipelined("tiny-mixtral", 4, 2), 2, "alltoall"))},
        PipelineCase{"deepseek_tp2_ep2_pp2_vpp2_allgather_distributed_optimizer", 8,
                     with_distributed_optimizer(with_tensor_parallel(
                         with_expert_parallel(deepseek("tiny-deepseek-v2", 4, 2, 2), 2, "allgather")))}),
    [](const ::testing::TestParamInfo<PipelineCase>& info) { return info.param.name; });

// The resolved setup of `variables` for `world_size` ranks, validated as
// `moebench run` validates it before it builds any parallel group.
void validate_mapping(const config::Variables& variables, int world_size) {
  const config::ResolvedConfig resolved =
      config::resolve({std::filesystem::path(MOEBENCH_SOURCE_DIR) / "configs", variables, {}});
  const config::ParallelConfig parallel = config::parallel_config_from_flags(resolved.flags, world_size);
  config::validate(config::model_config_from_flags(resolved.flags, parallel.tensor), parallel);
}

std::string validation_error(const config::Variables& variables, int world_size) {
  try {
    validate_mapping(variables, world_size);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(PipelineParallelMapping, BadMappingsFailValidationNamingTheValues) {
  using ::testing::HasSubstr;
  const int ranks = dist::test_world().size();
  if (ranks % 2 != 0) GTEST_SKIP() << "the mappings use PP=2";
  config::Variables base = {{"MODEL", "tiny-mixtral"}, {"CLUSTER", "local"}, {"PP", "2"}, {"MBS", "1"}};
  config::Variables odd_layers = base;
  odd_layers["NUM_LAYERS"] = "3";
  EXPECT_THAT(validation_error(odd_layers, ranks),
              HasSubstr("num-layers 3 is not divisible by PP=2; set PP_FIRST and PP_LAST"));
  config::Variables chunks_too_many = base;
  chunks_too_many["NUM_LAYERS"] = "6";
  chunks_too_many["VPP"] = "2";
  EXPECT_THAT(validation_error(chunks_too_many, ranks),
              HasSubstr("pipeline stage 0 holds 3 layers, not divisible by VPP=2"));
  config::Variables microbatches = base;
  microbatches["NUM_LAYERS"] = "4";
  microbatches["VPP"] = "2";
  microbatches["GBS"] = std::to_string(3 * ranks / 2);  // 3 microbatches per data-parallel rank
  EXPECT_THAT(validation_error(microbatches, ranks), HasSubstr("to be a multiple of PP=2"));
  config::Variables uneven = base;
  uneven["NUM_LAYERS"] = "4";
  uneven["PP_FIRST"] = "3";
  uneven["PP_LAST"] = "2";
  EXPECT_THAT(validation_error(uneven, ranks), HasSubstr("the two stages must hold all layers"));
  config::Variables good = base;
  good["NUM_LAYERS"] = "4";
  good["VPP"] = "2";
  EXPECT_NO_THROW(validate_mapping(good, ranks));
}

}  // namespace
}  // namespace moebench::train
