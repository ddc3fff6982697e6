// Native checkpoints load under any PP x EP mapping: each rank builds its
// pipeline stage and its ep rank's experts and reads only those pieces.
// Every Hugging Face fixture, converted on one rank, reproduces the
// transformers reference logits and loss under EP2 x PP2 (4 ranks) or PP2
// (2 ranks); a checkpoint saved by training under that mapping resumes on
// one rank and under another mapping with the loss an uninterrupted run has
// at the next iteration.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "moebench/ckpt/hf_to_native.h"
#include "moebench/ckpt/native_checkpoint.h"
#include "moebench/ckpt/native_model.h"
#include "moebench/ckpt/safetensors.h"
#include "moebench/ckpt/safetensors_tensor.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/dist/single_rank_communicator.h"
#include "moebench/train/pipeline_logits.h"
#include "mpi_test_world.h"
#include "zoo_training.h"

namespace moebench::ckpt {
namespace {

namespace fs = std::filesystem;

const fs::path kFixtures = fs::path(MOEBENCH_SOURCE_DIR) / "tests/fixtures/hf";
constexpr double kReferenceTolerance = 1e-4;  // relative, float32 against transformers' float64

// A fresh directory that every rank of `world` names alike (rank 0's process
// id in the name, so concurrent runs of the test binary never share one).
fs::path shared_directory(dist::Communicator& world, const std::string& name) {
  Tensor pid = Tensor::from_vector<int64_t>({world.rank() == 0 ? int64_t(::getpid()) : 0});
  world.broadcast(pid, 0);
  const fs::path path = fs::temp_directory_path() / ("moebench_" + name + "_" + std::to_string(pid.data<int64_t>()[0]));
  if (world.rank() == 0) fs::remove_all(path);
  world.barrier();
  return path;
}

// The mapping of the test world: EP2 x PP2 on 4 ranks, PP2 on 2; an odd
// layer count splits unevenly (the first stage one layer shorter).
config::ParallelConfig world_mapping(int world_size, int num_layers) {
  config::ParallelConfig mapping;
  mapping.world_size = world_size;
  mapping.pipeline = 2;
  mapping.expert = world_size == 4 ? 2 : 1;
  if (num_layers % 2 != 0) {
    mapping.first_stage_layers = num_layers / 2;
    mapping.last_stage_layers = num_layers - num_layers / 2;
  }
  return mapping;
}

std::vector<std::string> hub_fixtures() {
  std::vector<std::string> names;
  for (const fs::directory_entry& entry : fs::directory_iterator(kFixtures))
    if (fs::exists(entry.path() / "config.json") && fs::exists(entry.path() / "reference.safetensors"))
      names.push_back(entry.path().filename().string());
  std::ranges::sort(names);
  return names;
}

Tensor int64_tensor(const SafetensorsTensor& t) { return Tensor::from_vector<int64_t>(to_int64_vector(t), t.shape); }

double max_relative_error(const Tensor& got, const std::vector<float>& want) {
  double difference = 0, magnitude = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    difference = std::max(difference, std::abs(double(got.data<float>()[i]) - want[i]));
    magnitude = std::max(magnitude, std::abs(double(want[i])));
  }
  return difference / magnitude;
}

TEST(CheckpointMapping, ConvertedHubFixturesReproduceTheReferenceUnderPipelineAndExpertParallelism) {
  dist::Communicator& world = dist::test_world();
  if (world.size() != 2 && world.size() != 4) GTEST_SKIP() << "the mappings are PP2 (2 ranks) and EP2 x PP2 (4 ranks)";
  const std::vector<std::string> fixtures = hub_fixtures();
  ASSERT_FALSE(fixtures.empty());
  for (const std::string& fixture : fixtures) {
    SCOPED_TRACE(fixture);
    const fs::path root = shared_directory(world, "mapping_" + fixture);
    if (world.rank() == 0) convert_hf_to_native({kFixtures / fixture, root, {}, {}});
    world.barrier();

    const NativeCheckpoint checkpoint(root);
    const int layers = checkpoint_model_config(checkpoint.metadata()).num_layers;
    const config::ParallelConfig mapping = world_mapping(world.size(), layers);
    const dist::ParallelState state(world,
                                    {.world_size = world.size(), .expert = mapping.expert, .pipeline = mapping.pipeline});
    const int stage = state.membership(GroupKind::kPipeline).rank_in_group;
    model::GPTModel model =
        load_native_model(checkpoint, state, model::PipelineStageLayout::of_stage(mapping, layers, stage));
    const SafetensorsFile reference(kFixtures / fixture / "reference.safetensors");
    const model::ForwardOutput out = train::pipeline_logits(model, state, int64_tensor(reference.tensor("input_ids")),
                                                            int64_tensor(reference.tensor("labels")));
    if (model.pipeline_layout().has_output_layer()) {
      const Tensor logits = out.logits.slice(2, 0, model.config().vocab_size).contiguous();
      const double logits_error = max_relative_error(logits, to_float_vector(reference.tensor("logits")));
      const double loss = to_float_vector(reference.tensor("loss"))[0];
      EXPECT_LT(logits_error, kReferenceTolerance);
      EXPECT_NEAR(out.lm_loss, loss, kReferenceTolerance * std::abs(loss));
      if (state.world_rank() == world.size() - 1)
        std::printf("[ info ] %s under PP=%d EP=%d: logits rel err %.2e, loss %.6f vs %.6f\n", fixture.c_str(),
                    mapping.pipeline, mapping.expert, logits_error, out.lm_loss, loss);
    } else {
      EXPECT_FALSE(out.logits.defined());
    }
    world.barrier();
    if (world.rank() == 0) fs::remove_all(root);
  }
}

// tiny-deepseek-v2 with 4 layers (the first dense), MLA, shared experts,
// group-limited routing: every kind of tensor a checkpoint holds.
train::ZooRun deepseek_run(int pipeline, int expert_parallel, int iterations) {
  return {.model = "tiny-deepseek-v2",
          .expert_parallel = expert_parallel,
          .pipeline = pipeline,
          .num_layers = 4,
          .flags = {"--moe-layer-freq", "([0]+[1]*3)"},
          .iterations = iterations};
}

void expect_iteration_matches(const train::ZooOutcome& resumed, const IterationRecord& want) {
  ASSERT_EQ(resumed.records.size(), 1u);
  const IterationRecord& got = resumed.records.front();
  EXPECT_EQ(got.iteration, want.iteration);
  EXPECT_EQ(got.consumed_samples, want.consumed_samples);
  EXPECT_NEAR(got.lm_loss, want.lm_loss, train::kZooTolerance * std::abs(want.lm_loss));
  EXPECT_NEAR(got.grad_norm, want.grad_norm, train::kZooTolerance * std::abs(want.grad_norm));
}

TEST(CheckpointMapping, TrainedUnderOneMappingResumesUnderAnother) {
  dist::Communicator& world = dist::test_world();
  if (world.size() != 2 && world.size() != 4) GTEST_SKIP() << "the mappings are PP2 (2 ranks) and EP2 x PP2 (4 ranks)";
  const fs::path root = shared_directory(world, "mapping_trained");
  const int saving_ep = world.size() == 4 ? 2 : 1;
  train::ZooRun saving = deepseek_run(2, saving_ep, 2);
  saving.save = root.string();
  train::train_zoo_model(world, saving);

  dist::SingleRankCommunicator one_rank;
  const train::ZooOutcome uninterrupted = train::train_zoo_model(one_rank, deepseek_run(1, 1, 3));
  ASSERT_EQ(uninterrupted.records.size(), 3u);
  const IterationRecord& third = uninterrupted.records[2];

  train::ZooRun on_one_rank = deepseek_run(1, 1, 3);
  on_one_rank.load = root.string();
  {
    SCOPED_TRACE("resumed on 1 rank");
    expect_iteration_matches(train::train_zoo_model(one_rank, on_one_rank), third);
  }
  // 4 ranks: PP2 x DP2 after EP2 x PP2; 2 ranks: EP2 after PP2.
  train::ZooRun other_mapping = world.size() == 4 ? deepseek_run(2, 1, 3) : deepseek_run(1, 2, 3);
  other_mapping.load = root.string();
  {
    SCOPED_TRACE("resumed under another mapping");
    expect_iteration_matches(train::train_zoo_model(world, other_mapping), third);
  }
  world.barrier();
  if (world.rank() == 0) fs::remove_all(root);
}

}  // namespace
}  // namespace moebench::ckpt
