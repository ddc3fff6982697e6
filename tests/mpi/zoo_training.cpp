#include "zoo_training.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "moebench/config/model_config.h"
#include "moebench/config/parallel_config.h"
#include "moebench/config/resolve.h"
#include "moebench/data/mock_dataset.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/model/gpt_model.h"
#include "moebench/train/trainer.h"

namespace moebench::train {
namespace {

struct Run {
  config::ModelConfig model;
  TrainingSetup setup;
};

std::string layers_or_empty(int layers) { return layers > 0 ? std::to_string(layers) : ""; }

Run configured_run(const ZooRun& zoo, int world_size) {
  config::Variables variables = {{"MODEL", zoo.model},
                                 {"CLUSTER", "local"},
                                 {"EP", std::to_string(zoo.expert_parallel)},
                                 {"PP", std::to_string(zoo.pipeline)},
                                 {"VPP", std::to_string(zoo.virtual_stages)},
                                 {"PP_FIRST", layers_or_empty(zoo.first_stage_layers)},
                                 {"PP_LAST", layers_or_empty(zoo.last_stage_layers)}};
  if (zoo.num_layers > 0) variables["NUM_LAYERS"] = std::to_string(zoo.num_layers);
  if (!zoo.dispatcher.empty()) variables["MOE_TOKEN_DISPATCHER"] = zoo.dispatcher;
  std::vector<std::string> flags = {"--micro-batch-size", "1", "--global-batch-size", "8", "--train-iters",
                                    std::to_string(zoo.iterations), "--lr-warmup-iters", "1", "--eval-iters", "0",
                                    "--ddp-bucket-size", "20000"};
  flags.insert(flags.end(), zoo.flags.begin(), zoo.flags.end());
  config::ResolvedConfig resolved =
      config::resolve({std::filesystem::path(MOEBENCH_SOURCE_DIR) / "configs", variables, flags});
  // Every rank also trains the one-rank reference: checkpoints only where the run asks (ZooRun::save).
  resolved.flags.erase("--save");
  Run run;
  run.setup.parallel = config::parallel_config_from_flags(resolved.flags, world_size);
  run.setup.parallel.distributed_optimizer = zoo.distributed_optimizer;
  run.setup.train = train_config_from_flags(resolved.flags, run.setup.parallel.global_batch);
  run.setup.train.save = zoo.save;
  run.setup.train.load = zoo.load;
  run.setup.model_args = resolved.flags.to_arguments();
  run.model = config::model_config_from_flags(resolved.flags, run.setup.parallel.tensor);
  run.setup.seq_length = run.model.seq_length;
  run.setup.hidden_size = run.model.hidden_size;
  return run;
}

double relative_difference(double value, double reference) {
  return std::abs(value - reference) / std::max(std::abs(reference), 1e-30);
}

// Largest |value - reference| over the parameter, relative to its largest
// reference magnitude: Adam moves every element by about lr, so an
// element-wise ratio would judge elements that sit near zero too harshly.
double relative_difference(const Tensor& value, const Tensor& reference) {
  const float* v = value.data<float>();
  const float* r = reference.data<float>();
  double difference = 0, magnitude = 0;
  for (int64_t i = 0; i < value.numel(); ++i) {
    difference = std::max(difference, std::abs(double(v[i]) - double(r[i])));
    magnitude = std::max(magnitude, std::abs(double(r[i])));
  }
  return difference / std::max(magnitude, 1e-30);
}

}  // namespace

ZooRun ZooRun::one_rank() const {
  ZooRun reference = *this;
  reference.expert_parallel = reference.pipeline = reference.virtual_stages = 1;
  reference.first_stage_layers = reference.last_stage_layers = 0;
  return reference;
}

ZooOutcome train_zoo_model(dist::Communicator& world, const ZooRun& zoo) {
  const Run run = configured_run(zoo, world.size());
  const config::ParallelConfig& p = run.setup.parallel;
  const dist::ParallelState state(world, {.world_size = world.size(), .expert = p.expert, .pipeline = p.pipeline});
  const uint64_t seed = uint64_t(run.setup.train.seed);
  const int stage = state.membership(GroupKind::kPipeline).rank_in_group;
  model::GPTModel gpt(run.model, seed, model::ModelConventions{}, model::ModelPlacement::cpu(), state,
                      model::PipelineStageLayout::of_stage(p, run.model.num_layers, stage));
  TrainableModelRef<model::GPTModel> trainable(gpt);
  const data::MockDataset train_data(run.model.seq_length, run.model.vocab_size, seed, data::Split::Train);
  const data::MockDataset validation_data(run.model.seq_length, run.model.vocab_size, seed,
                                          data::Split::Validation);
  ZooOutcome outcome;
  Trainer trainer(trainable, run.setup, state, train_data, validation_data,
                  {[&outcome](const IterationRecord& r) { outcome.records.push_back(r); }, {}});
  trainer.train();
  for (const model::Parameter* p : gpt.parameters())
    outcome.weights.push_back({p->name, p->value.clone(), Tensor(), Tensor(), p->weight_decay, p->is_expert});
  return outcome;
}

ZooDifferences expect_matches_one_rank(const ZooOutcome& parallel, const ZooOutcome& reference) {
  ZooDifferences worst;
  EXPECT_EQ(parallel.records.size(), size_t(kZooIterations));
  EXPECT_EQ(reference.records.size(), size_t(kZooIterations));
  for (size_t i = 0; i < std::min(parallel.records.size(), reference.records.size()); ++i) {
    SCOPED_TRACE("iteration " + std::to_string(i + 1));
    const IterationRecord& got = parallel.records[i];
    const IterationRecord& want = reference.records[i];
    EXPECT_FALSE(got.skipped);
    const double lm = relative_difference(got.lm_loss, want.lm_loss);
    const double balancing = relative_difference(got.load_balancing_loss, want.load_balancing_loss);
    const double norm = relative_difference(got.grad_norm, want.grad_norm);
    worst.loss = std::max({worst.loss, lm, balancing});
    worst.grad_norm = std::max(worst.grad_norm, norm);
    EXPECT_LT(lm, kZooTolerance) << got.lm_loss << " vs " << want.lm_loss;
    EXPECT_LT(balancing, kZooTolerance) << got.load_balancing_loss << " vs " << want.load_balancing_loss;
    EXPECT_LT(norm, kZooTolerance) << got.grad_norm << " vs " << want.grad_norm;
  }
  size_t next = 0;
  for (const model::Parameter& got : parallel.weights) {
    while (next < reference.weights.size() && reference.weights[next].name != got.name) ++next;
    if (next == reference.weights.size()) {
      ADD_FAILURE() << got.name << " is not a one-rank parameter (or out of order)";
      break;
    }
    const double difference = relative_difference(got.value, reference.weights[next].value);
    worst.weight = std::max(worst.weight, difference);
    EXPECT_LT(difference, kZooTolerance) << got.name;
  }
  return worst;
}

}  // namespace moebench::train
