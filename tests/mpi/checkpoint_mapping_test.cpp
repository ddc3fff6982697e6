// Native checkpoints load under any TP x PP x EP mapping: each rank builds
// its pipeline stage, its tp slices and its ep rank's experts and reads only
// those pieces. Every Hugging Face fixture, converted on one rank (or laid
// out for TP2), reproduces the transformers reference logits and loss under
// EP2 x PP2 (4 ranks) or PP2 (2 ranks), and under TP2 with sequence
// parallelism (2 ranks), TP2 x PP2 (4) and TP2 x EP2 x PP2 (8); a checkpoint
// saved by training under a mapping resumes on one rank and under another
// mapping with the loss an uninterrupted run has at the next iteration, and
// one saved on one rank resumes under TP2 x PP2 with the uninterrupted run's
// next iteration and weights (Adam's moments read as the tp slices), also
// when TP2 pads the vocabulary to more rows than the one-rank run did.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
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

// TP x EP x PP on `world_size` ranks (the rest data-parallel, SP with TP);
// an odd layer count splits unevenly (the first stage one layer shorter).
config::ParallelConfig world_mapping(int world_size, int tensor, int expert, int pipeline, int num_layers) {
  config::ParallelConfig mapping;
  mapping.world_size = world_size;
  mapping.tensor = tensor;
  mapping.sequence_parallel = tensor > 1;
  mapping.expert = expert;
  mapping.pipeline = pipeline;
  if (pipeline == 2 && num_layers % 2 != 0) {
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

// A mapping of the fixture tests: TP x EP x PP, and the layout the fixtures
// are converted into (one rank's, or laid out for TP2).
struct FixtureMapping {
  int tensor = 1, expert = 1, pipeline = 1;
  ParallelMapping converted{};
};

// Every hub fixture, converted as `run` says on rank 0, loaded under its
// mapping on the ranks of `world` and run on the reference batch: the last
// stage's logits (gathered over tp) and loss equal the reference.
void expect_fixtures_reproduce_the_reference(dist::Communicator& world, const FixtureMapping& run) {
  const std::vector<std::string> fixtures = hub_fixtures();
  ASSERT_FALSE(fixtures.empty());
  for (const std::string& fixture : fixtures) {
    SCOPED_TRACE(fixture);
    const fs::path root = shared_directory(world, "mapping_" + fixture);
    if (world.rank() == 0) convert_hf_to_native({kFixtures / fixture, root, run.converted, {}});
    world.barrier();

    const NativeCheckpoint checkpoint(root);
    const int layers = checkpoint_model_config(checkpoint.metadata()).num_layers;
    const config::ParallelConfig mapping = world_mapping(world.size(), run.tensor, run.expert, run.pipeline, layers);
    const dist::ParallelState state(world, {.world_size = world.size(),
                                            .tensor = mapping.tensor,
                                            .expert = mapping.expert,
                                            .pipeline = mapping.pipeline});
    model::GPTModel model = load_native_model(checkpoint, state, mapping);
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
        std::printf("[ info ] %s (converted for TP=%d) under TP=%d PP=%d EP=%d: logits rel err %.2e, loss %.6f vs "
                    "%.6f\n",
                    fixture.c_str(), run.converted.tp, mapping.tensor, mapping.pipeline, mapping.expert, logits_error,
                    out.lm_loss, loss);
    } else {
      EXPECT_FALSE(out.logits.defined());
    }
    world.barrier();
    if (world.rank() == 0) fs::remove_all(root);
  }
}

TEST(CheckpointMapping, ConvertedHubFixturesReproduceTheReferenceUnderPipelineAndExpertParallelism) {
  dist::Communicator& world = dist::test_world();
  if (world.size() != 2 && world.size() != 4) GTEST_SKIP() << "the mappings are PP2 (2 ranks) and EP2 x PP2 (4 ranks)";
  expect_fixtures_reproduce_the_reference(world, {.expert = world.size() / 2, .pipeline = 2});
}

TEST(CheckpointMapping, ConvertedHubFixturesReproduceTheReferenceUnderTensorParallelism) {
  dist::Communicator& world = dist::test_world();
  if (world.size() != 2 && world.size() != 4 && world.size() != 8)
    GTEST_SKIP() << "the mappings are TP2 (2 ranks), TP2 x PP2 (4) and TP2 x EP2 x PP2 (8)";
  expect_fixtures_reproduce_the_reference(
      world, {.tensor = 2, .expert = world.size() == 8 ? 2 : 1, .pipeline = world.size() == 2 ? 1 : 2});
}

// `moebench convert hf-to-native --tp 2`: the TP2 layout loads under TP2
// (and, as any native checkpoint, under any other mapping).
TEST(CheckpointMapping, HubFixturesConvertedForTensorParallelismReproduceTheReference) {
  dist::Communicator& world = dist::test_world();
  if (world.size() != 2) GTEST_SKIP() << "converts for TP2 and loads under TP2 on 2 ranks";
  expect_fixtures_reproduce_the_reference(world, {.tensor = 2, .converted = {.tp = 2}});
}

// tiny-deepseek-v2 with 4 layers (the first dense), MLA, shared experts,
// group-limited routing: every kind of tensor a checkpoint holds.
train::ZooRun deepseek_run(int pipeline, int expert_parallel, int iterations, int tensor_parallel = 1) {
  return {.model = "tiny-deepseek-v2",
          .tensor_parallel = tensor_parallel,
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

// Saved on one rank after iteration 2, resumed under TP2 x PP2 for iteration
// 3: its loss and grad norm, and the weights after its update (which Adam's
// moments steer: the tp-split ones read as this rank's slices, the
// replicated ones whole), are the uninterrupted one-rank run's.
TEST(CheckpointMapping, SavedOnOneRankResumesUnderTensorAndPipelineParallelism) {
  dist::Communicator& world = dist::test_world();
  if (world.size() != 4) GTEST_SKIP() << "resumes under TP2 x PP2 (4 ranks)";
  const fs::path root = shared_directory(world, "mapping_one_rank");
  dist::SingleRankCommunicator one_rank;
  if (world.rank() == 0) {
    train::ZooRun saving = deepseek_run(1, 1, 2);
    saving.save = root.string();
    train::train_zoo_model(one_rank, saving);
  }
  world.barrier();
  train::ZooOutcome uninterrupted = train::train_zoo_model(one_rank, deepseek_run(1, 1, 3));
  ASSERT_EQ(uninterrupted.records.size(), 3u);
  uninterrupted.records.erase(uninterrupted.records.begin(), uninterrupted.records.end() - 1);

  train::ZooRun resumed = deepseek_run(2, 1, 3, 2);
  resumed.load = root.string();
  const train::ZooOutcome parallel = train::train_zoo_model(world, resumed);
  ASSERT_EQ(parallel.records.size(), 1u);
  const train::ZooDifferences worst = train::expect_matches_one_rank(parallel, uninterrupted);
  if (world.rank() == 0)
    std::printf("[ info ] 1-rank checkpoint of iteration 2 resumed under TP2 x PP2: largest relative difference of "
                "losses %.2e, grad norms %.2e, weights %.2e\n",
                worst.loss, worst.grad_norm, worst.weight);
  world.barrier();
  if (world.rank() == 0) fs::remove_all(root);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  const Tensor x = a.contiguous(), y = b.contiguous();
  return x.shape() == y.shape() && std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()) == 0;
}

// tiny-mixtral trained on one rank with --make-vocab-size-divisible-by 128
// (384 rows, its real vocabulary) resumes under TP2, which pads that divisor
// to 512 rows: the padding rows of the embedding, the output layer and their
// moments load as zeros. Megatron's cross-entropy takes the padded logits
// into the softmax, so the loss depends on the padding: the reference is the
// one-rank run padded as TP2 pads (divisible by 256) resumed from the same
// checkpoint. load_native_model under TP2 reads tp rank 1's vocabulary
// slice, rows [256, 512), as the saved rows 256..383 and zeros.
TEST(CheckpointMapping, SavedOnOneRankResumesUnderTensorParallelismThatPadsTheVocabularyOtherwise) {
  dist::Communicator& world = dist::test_world();
  if (world.size() != 2) GTEST_SKIP() << "resumes under TP2 (2 ranks)";
  const fs::path root = shared_directory(world, "mapping_vocabulary_padding");
  const std::vector<std::string> by_128 = {"--make-vocab-size-divisible-by", "128"};
  dist::SingleRankCommunicator one_rank;
  if (world.rank() == 0)
    train::train_zoo_model(one_rank, {.model = "tiny-mixtral", .flags = by_128, .iterations = 2, .save = root});
  world.barrier();
  const train::ZooOutcome reference = train::train_zoo_model(
      one_rank,
      {.model = "tiny-mixtral", .flags = {"--make-vocab-size-divisible-by", "256"}, .iterations = 3, .load = root});
  const train::ZooOutcome parallel = train::train_zoo_model(
      world, {.model = "tiny-mixtral", .tensor_parallel = 2, .flags = by_128, .iterations = 3, .load = root});
  ASSERT_EQ(parallel.records.size(), 1u);
  const train::ZooDifferences worst = train::expect_matches_one_rank(parallel, reference);
  if (world.rank() == 0)
    std::printf("[ info ] 1-rank checkpoint of 384 vocabulary rows resumed under TP2 (512 rows): largest relative "
                "difference of losses %.2e, grad norms %.2e, weights %.2e\n",
                worst.loss, worst.grad_norm, worst.weight);

  const NativeCheckpoint checkpoint(root);
  const config::ParallelConfig mapping =
      world_mapping(2, 2, 1, 1, checkpoint_model_config(checkpoint.metadata()).num_layers);
  const dist::ParallelState state(world, {.world_size = 2, .tensor = 2});
  model::GPTModel model = load_native_model(checkpoint, state, mapping);
  const Tensor saved = checkpoint.read_whole("output_layer.weight");
  const Tensor held = model.parameter("output_layer.weight").value;
  ASSERT_EQ(saved.shape()[0], 384);
  ASSERT_EQ(held.shape()[0], 256);
  const int64_t begin = 256 * state.membership(GroupKind::kTensor).rank_in_group;
  const int64_t common = std::min<int64_t>(256, 384 - begin);
  EXPECT_TRUE(same_bits(held.slice(0, 0, common), saved.slice(0, begin, begin + common)));
  if (common < 256) {
    const Tensor padding = held.slice(0, common, 256);
    EXPECT_TRUE(same_bits(padding, Tensor::zeros(padding.shape(), padding.dtype())));
  }
  world.barrier();
  if (world.rank() == 0) fs::remove_all(root);
}

}  // namespace
}  // namespace moebench::ckpt
