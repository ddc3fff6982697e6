// Saving and resuming a training run: a run saved at iteration 2 and resumed
// from that checkpoint logs bit-identical losses, gradient norms and learning
// rates and ends with bit-identical weights and expert biases, as an
// uninterrupted run does (CPU, float32), with Adam's moments in fp32 or in
// bf16 (the precision-aware optimizer: the checkpoint keeps their dtype). Also
// the flags that load less (--finetune, --no-load-optim), the errors of a
// checkpoint that does not fit, and fp32 moments loaded into a bf16-moment run.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "moebench/ckpt/checkpoint_directory.h"
#include "moebench/ckpt/native_checkpoint.h"
#include "moebench/config/model_config.h"
#include "moebench/config/parallel_config.h"
#include "moebench/config/resolve.h"
#include "moebench/core/error.h"
#include "moebench/data/mock_dataset.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/dist/single_rank_communicator.h"
#include "moebench/model/gpt_model.h"
#include "moebench/train/adam_optimizer.h"
#include "moebench/train/trainer.h"
#include "moebench/train/training_checkpoint.h"

namespace moebench::train {
namespace {

namespace fs = std::filesystem;

constexpr int kIterations = 4;
constexpr int kSaveInterval = 2;

struct Scenario {
  std::string model;
  bool distributed_optimizer = false;
  bool bf16_moments = false;  // --use-precision-aware-optimizer --exp-avg-dtype bf16 --exp-avg-sq-dtype bf16
  std::vector<std::string> flags{};  // more Megatron flags
};

struct Outcome {
  std::vector<IterationRecord> records;
  std::vector<Tensor> state;  // every parameter and buffer at the end, copied
};

// The tiny model of the repository, 4 iterations of GBS 4, warmup 1, no evaluation.
struct TrainingRun {
  config::ModelConfig model;
  TrainingSetup setup;
};

TrainingRun configured_run(const Scenario& scenario) {
  std::vector<std::string> flags = {"--micro-batch-size", "1", "--global-batch-size", "4", "--train-iters",
                                    std::to_string(kIterations), "--lr-warmup-iters", "1", "--eval-iters", "0"};
  flags.insert(flags.end(), scenario.flags.begin(), scenario.flags.end());
  const config::ResolvedConfig resolved = config::resolve(
      {fs::path(MOEBENCH_SOURCE_DIR) / "configs", {{"MODEL", scenario.model}, {"CLUSTER", "local"}}, flags});
  TrainingRun run;
  run.setup.parallel = config::parallel_config_from_flags(resolved.flags, 1);
  run.setup.parallel.distributed_optimizer = scenario.distributed_optimizer;
  run.setup.train = train_config_from_flags(resolved.flags, run.setup.parallel.global_batch);
  if (scenario.bf16_moments)
    run.setup.train.optimizer_precision.exp_avg = run.setup.train.optimizer_precision.exp_avg_sq = DType::BF16;
  run.setup.train.save.clear();
  run.setup.train.load.clear();
  run.model = config::model_config_from_flags(resolved.flags, 1);
  run.setup.seq_length = run.model.seq_length;
  run.setup.model_args = resolved.flags.to_arguments();
  return run;
}

// Trains (resuming when setup.train.load is set) and copies the final state.
Outcome train(const TrainingRun& run) {
  dist::SingleRankCommunicator world;
  const dist::ParallelState state(world, {.world_size = 1});
  const uint64_t seed = uint64_t(run.setup.train.seed);
  model::GPTModel gpt(run.model, seed);
  TrainableModelRef<model::GPTModel> trainable(gpt);
  const data::MockDataset train_data(run.model.seq_length, run.model.vocab_size, seed, data::Split::Train);
  Outcome outcome;
  Trainer trainer(trainable, run.setup, state, train_data, train_data,
                  {[&outcome](const IterationRecord& r) { outcome.records.push_back(r); }, {}});
  trainer.train();
  for (const model::Parameter* p : gpt.parameters()) outcome.state.push_back(p->value.clone());
  for (const model::Buffer& b : gpt.buffers()) outcome.state.push_back(b.value.clone());
  return outcome;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0;
}

fs::path fresh_directory(const std::string& name) {
  const fs::path path = fs::temp_directory_path() / ("moebench_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(path);
  return path;
}

std::string error_of(const TrainingRun& run) {
  try {
    train(run);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class ResumeTraining : public ::testing::TestWithParam<Scenario> {};

TEST_P(ResumeTraining, ResumedRunMatchesUninterruptedRunBitForBit) {
  const fs::path root = fresh_directory("resume_" + GetParam().model);
  const TrainingRun plain = configured_run(GetParam());
  const Outcome uninterrupted = train(plain);

  TrainingRun saving = plain;
  saving.setup.train.save = root;
  saving.setup.train.save_interval = kSaveInterval;
  train(saving);
  EXPECT_EQ(ckpt::read_tracker(root), std::to_string(kIterations));
  const ckpt::NativeCheckpoint saved(root / "iter_0000002");
  EXPECT_EQ(saved.metadata().progress.consumed_samples, kSaveInterval * 4);
  EXPECT_EQ(saved.metadata().optimizer_steps, kSaveInterval);
  EXPECT_EQ(saved.read_whole("optimizer.exp_avg_sq.output_layer.weight").dtype(),
            GetParam().bf16_moments ? DType::BF16 : DType::F32);
  if (GetParam().model == "tiny-deepseek-v3") {
    EXPECT_TRUE(saved.contains("decoder.layers.1.mlp.router.expert_bias"));
  }

  TrainingRun resuming = plain;
  resuming.setup.train.load = root / "iter_0000002";
  const Outcome resumed = train(resuming);
  ASSERT_EQ(resumed.records.size(), size_t(kIterations - kSaveInterval));
  for (size_t i = 0; i < resumed.records.size(); ++i) {
    const IterationRecord& got = resumed.records[i];
    const IterationRecord& want = uninterrupted.records[i + kSaveInterval];
    EXPECT_EQ(got.iteration, want.iteration);
    EXPECT_EQ(got.consumed_samples, want.consumed_samples);
    EXPECT_EQ(got.lm_loss, want.lm_loss) << "iteration " << got.iteration;
    EXPECT_EQ(got.load_balancing_loss, want.load_balancing_loss) << "iteration " << got.iteration;
    EXPECT_EQ(got.grad_norm, want.grad_norm) << "iteration " << got.iteration;
    EXPECT_EQ(got.learning_rate, want.learning_rate) << "iteration " << got.iteration;
  }
  ASSERT_EQ(resumed.state.size(), uninterrupted.state.size());
  for (size_t k = 0; k < resumed.state.size(); ++k)
    EXPECT_TRUE(bitwise_equal(resumed.state[k], uninterrupted.state[k])) << "state tensor " << k;
  fs::remove_all(root);
}

INSTANTIATE_TEST_SUITE_P(TinyModels, ResumeTraining,
                         ::testing::Values(Scenario{"tiny-mixtral", false}, Scenario{"tiny-deepseek-v3", true},
                                           Scenario{"tiny-mixtral", false, true},
                                           Scenario{"tiny-deepseek-v3", true, true}),
                         [](const auto& info) {
                           std::string name = info.param.model + (info.param.distributed_optimizer ? "_distopt" : "") +
                                              (info.param.bf16_moments ? "_bf16_moments" : "");
                           for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

TEST(ResumeTrainingFlags, FinetuneLoadsWeightsOnlyAndMissingOptimizerStateIsAnError) {
  const fs::path root = fresh_directory("resume_flags");
  TrainingRun saving = configured_run({"tiny-mixtral"});
  saving.setup.train.train_iters = kSaveInterval;
  saving.setup.train.save = root;
  saving.setup.train.save_optim = false;
  train(saving);
  EXPECT_FALSE(ckpt::NativeCheckpoint(root).contains("optimizer.exp_avg.output_layer.weight"));

  TrainingRun resuming = configured_run({"tiny-mixtral"});
  resuming.setup.train.load = root;
  EXPECT_NE(error_of(resuming).find("pass --no-load-optim or --finetune"), std::string::npos);

  resuming.setup.train.load_optim = false;
  EXPECT_EQ(train(resuming).records.front().iteration, kSaveInterval + 1);

  resuming.setup.train.finetune = true;
  EXPECT_EQ(train(resuming).records.front().iteration, 1);

  TrainingRun other_seed = configured_run({"tiny-mixtral"});
  other_seed.setup.train.load = root;
  other_seed.setup.train.load_optim = false;
  other_seed.setup.train.seed = 7;
  EXPECT_NE(error_of(other_seed).find("or pass --no-load-rng"), std::string::npos);

  TrainingRun other_model = configured_run({"tiny-deepseek-v3"});
  other_model.setup.train.load = root;
  EXPECT_NE(error_of(other_model).find("has no tensor"), std::string::npos);
  fs::remove_all(root);
}

// A tiny model trains with bf16 moments as with fp32 ones, with AdamOptimizer
// and with the distributed optimizer: the first update uses the moments
// before they are rounded, so the losses differ from the third iteration on,
// by less than 1e-4 relative over the 4 iterations (measured: 2e-5).
TEST(Bf16Moments, TrainCloseToFp32Moments) {
  for (const auto& [model, distributed] : {std::pair{"tiny-mixtral", false}, {"tiny-deepseek-v3", true}}) {
    SCOPED_TRACE(std::string(model) + (distributed ? " distributed optimizer" : ""));
    const Outcome fp32 = train(configured_run({model, distributed}));
    const Outcome bf16 = train(configured_run({model, distributed, true}));
    ASSERT_EQ(bf16.records.size(), fp32.records.size());
    EXPECT_EQ(bf16.records.front().lm_loss, fp32.records.front().lm_loss);  // before any update
    bool differs = false;
    for (size_t i = 1; i < fp32.records.size(); ++i) {
      EXPECT_NEAR(bf16.records[i].lm_loss, fp32.records[i].lm_loss, 1e-4 * fp32.records[i].lm_loss)
          << "iteration " << i + 1;
      differs = differs || bf16.records[i].lm_loss != fp32.records[i].lm_loss;
    }
    EXPECT_TRUE(differs) << "bf16 moments gave the fp32 losses bit for bit: were they stored in bf16?";
  }
}

// A checkpoint saved with fp32 moments loads into a run with bf16 moments:
// each moment is converted, rounded to the nearest bf16.
TEST(Bf16Moments, Fp32MomentsFromACheckpointAreRoundedToBf16) {
  const fs::path root = fresh_directory("bf16_moments_load");
  TrainingRun saving = configured_run({"tiny-mixtral"});
  saving.setup.train.train_iters = kSaveInterval;
  saving.setup.train.save = root;
  train(saving);

  const TrainingRun loading = configured_run({"tiny-mixtral", false, true});
  model::GPTModel gpt(loading.model, uint64_t(loading.setup.train.seed));
  TrainableModelRef<model::GPTModel> trainable(gpt);
  AdamOptions options;
  options.precision = loading.setup.train.optimizer_precision;
  AdamOptimizer optimizer(gpt.parameters(), options);
  load_training_checkpoint(root, trainable, optimizer, loading.setup.train);
  EXPECT_EQ(optimizer.steps_taken(), kSaveInterval);
  const ckpt::NativeCheckpoint saved(root);
  const std::vector<ckpt::ShardedTensor> moments = optimizer.state_pieces();
  ASSERT_EQ(moments.size(), 2 * gpt.parameters().size());
  for (const ckpt::ShardedTensor& moment : moments) {
    SCOPED_TRACE(moment.name);
    const Tensor stored = saved.read_whole(moment.name);
    ASSERT_EQ(stored.dtype(), DType::F32);
    ASSERT_EQ(moment.local.dtype(), DType::BF16);
    EXPECT_TRUE(bitwise_equal(moment.local, stored.to(DType::BF16)));
  }
  fs::remove_all(root);
}

// Rows [0, rows) of a [V, h] tensor.
Tensor leading_rows(const Tensor& tensor, int64_t rows) { return tensor.slice(0, 0, rows).contiguous(); }

// A checkpoint loads into a model whose vocabulary is padded otherwise (as
// another TP size pads it; here another --make-vocab-size-divisible-by):
// the embedding, the output layer and Adam's moments of both keep their
// common rows bit for bit and the model's further padding rows are zero.
// A model with fewer rows than the checkpoint's real vocabulary cannot load it.
TEST(VocabularyPadding, CheckpointLoadsIntoAnotherPadding) {
  const std::vector<std::string> by_128 = {"--make-vocab-size-divisible-by", "128"};  // 384 rows (the real vocabulary)
  const std::vector<std::string> by_256 = {"--make-vocab-size-divisible-by", "256"};  // 512 rows
  for (const auto& [saved_flags, loaded_flags] : {std::pair{by_128, by_256}, {by_256, by_128}}) {
    SCOPED_TRACE("saved with divisible-by " + saved_flags[1] + ", loaded with " + loaded_flags[1]);
    const fs::path root = fresh_directory("vocabulary_padding");
    TrainingRun saving = configured_run({"tiny-mixtral", false, false, saved_flags});
    saving.setup.train.train_iters = kSaveInterval;
    saving.setup.train.save = root;
    train(saving);

    const TrainingRun loading = configured_run({"tiny-mixtral", false, false, loaded_flags});
    model::GPTModel gpt(loading.model, uint64_t(loading.setup.train.seed) + 1);
    TrainableModelRef<model::GPTModel> trainable(gpt);
    AdamOptimizer optimizer(gpt.parameters(), {});
    load_training_checkpoint(root, trainable, optimizer, loading.setup.train);
    std::vector<ckpt::ShardedTensor> loaded = optimizer.state_pieces();
    for (const model::Parameter* p : gpt.parameters()) loaded.push_back(ckpt::whole_tensor(p->name, p->value));
    const ckpt::NativeCheckpoint saved(root);
    int checked = 0;
    for (const ckpt::ShardedTensor& tensor : loaded) {
      if (!tensor.name.ends_with("word_embeddings.weight") && !tensor.name.ends_with("output_layer.weight")) continue;
      SCOPED_TRACE(tensor.name);
      const Tensor stored = saved.read_whole(tensor.name);
      const int64_t rows = tensor.local.shape()[0], common = std::min(rows, stored.shape()[0]);
      ASSERT_NE(rows, stored.shape()[0]);
      EXPECT_TRUE(bitwise_equal(leading_rows(tensor.local, common), leading_rows(stored, common)));
      if (rows > common) {
        const Tensor padding = tensor.local.slice(0, common, rows).contiguous();
        EXPECT_TRUE(bitwise_equal(padding, Tensor::zeros(padding.shape(), padding.dtype())));
      }
      ++checked;
    }
    EXPECT_EQ(checked, 6);  // two parameters and two moments of each

    TrainingRun smaller_vocabulary = configured_run({"tiny-mixtral", false, false, {"--vocab-size", "200"}});
    smaller_vocabulary.setup.train.load = root;
    const std::string error = error_of(smaller_vocabulary);
    EXPECT_NE(error.find("only rows past the real vocabulary of 384 may differ"), std::string::npos) << error;
    fs::remove_all(root);
  }
}

}  // namespace
}  // namespace moebench::train
