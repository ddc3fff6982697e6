#include "zoo_training.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "moebench/config/model_config.h"
#include "moebench/config/parallel_config.h"
#include "moebench/config/resolve.h"
#include "moebench/config/validation.h"
#include "moebench/data/mock_dataset.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/model/gpt_model.h"
#include "moebench/model/tensor_parallel_gather.h"
#include "moebench/ops/elementwise.h"
#include "moebench/train/trainer.h"

namespace moebench::train {
namespace {

struct Run {
  config::ModelConfig model;
  TrainingSetup setup;
};

std::string layers_or_empty(int layers) { return layers > 0 ? std::to_string(layers) : ""; }

// The zoo model with its repository configuration, shortened, validated as
// `moebench run` validates it.
Run configured_run(const ZooRun& zoo, int world_size) {
  config::Variables variables = {{"MODEL", zoo.model},
                                 {"CLUSTER", "local"},
                                 {"TP", std::to_string(zoo.tensor_parallel)},
                                 {"EP", std::to_string(zoo.expert_parallel)},
                                 {"PP", std::to_string(zoo.pipeline)},
                                 {"VPP", std::to_string(zoo.virtual_stages)},
                                 {"PP_FIRST", layers_or_empty(zoo.first_stage_layers)},
                                 {"PP_LAST", layers_or_empty(zoo.last_stage_layers)}};
  if (zoo.num_layers > 0) variables["NUM_LAYERS"] = std::to_string(zoo.num_layers);
  if (!zoo.dispatcher.empty()) variables["MOE_TOKEN_DISPATCHER"] = zoo.dispatcher;
  std::vector<std::string> flags = {"--micro-batch-size", std::to_string(zoo.micro_batch), "--global-batch-size", "8",
                                    "--train-iters", std::to_string(zoo.iterations), "--lr-warmup-iters", "1",
                                    "--eval-iters", "0", "--ddp-bucket-size", "20000"};
  flags.insert(flags.end(), zoo.flags.begin(), zoo.flags.end());
  config::ResolvedConfig resolved =
      config::resolve({std::filesystem::path(MOEBENCH_SOURCE_DIR) / "configs", variables, flags});
  // Every rank also trains the one-rank reference: checkpoints only where the run asks (ZooRun::save).
  resolved.flags.erase("--save");
  if (!zoo.save.empty()) resolved.flags.set("--save", {zoo.save.string()});
  if (!zoo.load.empty()) resolved.flags.set("--load", {zoo.load.string()});
  if (!zoo.sequence_parallel) resolved.flags.erase("--sequence-parallel");
  Run run;
  run.setup.parallel = config::parallel_config_from_flags(resolved.flags, world_size);
  run.setup.parallel.distributed_optimizer = zoo.distributed_optimizer;
  run.setup.train = train_config_from_flags(resolved.flags, run.setup.parallel.global_batch);
  run.model = config::model_config_from_flags(resolved.flags, run.setup.parallel.tensor);
  config::validate(run.model, run.setup.parallel);
  run.setup.seq_length = run.model.seq_length;
  run.setup.hidden_size = run.model.hidden_size;
  run.setup.model_args = resolved.flags.to_arguments();  // what a checkpoint records, as `moebench run`
  return run;
}

double relative_difference(double value, double reference) {
  return std::abs(value - reference) / std::max(std::abs(reference), 1e-30);
}

}  // namespace

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

ZooRun ZooRun::one_rank() const {
  ZooRun reference = *this;
  reference.tensor_parallel = reference.expert_parallel = reference.pipeline = reference.virtual_stages = 1;
  reference.first_stage_layers = reference.last_stage_layers = 0;
  reference.save.clear();
  return reference;
}

void validate_zoo_run(const ZooRun& run, int world_size) { configured_run(run, world_size); }

ZooOutcome train_zoo_model(dist::Communicator& world, const ZooRun& zoo) {
  const Run run = configured_run(zoo, world.size());
  const config::ParallelConfig& p = run.setup.parallel;
  const dist::ParallelState state(world, {.world_size = world.size(),
                                          .tensor = p.tensor,
                                          .expert = p.expert,
                                          .expert_tensor = p.expert_tensor,
                                          .pipeline = p.pipeline});
  const uint64_t seed = uint64_t(run.setup.train.seed);
  const int stage = state.membership(GroupKind::kPipeline).rank_in_group;
  const model::ModelPlacement placement =
      zoo.device.is_cuda() ? model::ModelPlacement::cuda(zoo.device.index) : model::ModelPlacement::cpu();
  model::GPTModel gpt(run.model, seed, model::ModelConventions{}, placement, state,
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
    outcome.weights.push_back(
        {p->name,
         model::gather_tensor_parallel(p->main.defined() ? ops::to_cpu(p->main) : p->value, p->tensor_parallel,
                                       state.group(GroupKind::kTensor)),
         Tensor(), Tensor(), p->weight_decay, p->is_expert});
  return outcome;
}

ZooDifferences expect_matches_one_rank(const ZooOutcome& parallel, const ZooOutcome& reference,
                                       double tolerance) {
  ZooDifferences worst;
  EXPECT_FALSE(reference.records.empty()) << "the reference logged no iteration";
  for (const IterationRecord& want : reference.records) {
    SCOPED_TRACE("iteration " + std::to_string(want.iteration));
    const auto found = std::ranges::find(parallel.records, want.iteration, &IterationRecord::iteration);
    if (found == parallel.records.end()) {
      ADD_FAILURE() << "the parallel run did not log this iteration";
      continue;
    }
    const IterationRecord& got = *found;
    EXPECT_FALSE(got.skipped);
    const double lm = relative_difference(got.lm_loss, want.lm_loss);
    const double balancing = relative_difference(got.load_balancing_loss, want.load_balancing_loss);
    const double norm = relative_difference(got.grad_norm, want.grad_norm);
    worst.loss = std::max({worst.loss, lm, balancing});
    worst.grad_norm = std::max(worst.grad_norm, norm);
    EXPECT_LT(lm, tolerance) << got.lm_loss << " vs " << want.lm_loss;
    EXPECT_LT(balancing, tolerance) << got.load_balancing_loss << " vs " << want.load_balancing_loss;
    EXPECT_LT(norm, tolerance) << got.grad_norm << " vs " << want.grad_norm;
  }
  size_t next = 0;
  for (const model::Parameter& got : parallel.weights) {
    while (next < reference.weights.size() && reference.weights[next].name != got.name) ++next;
    if (next == reference.weights.size()) {
      ADD_FAILURE() << got.name << " is not a one-rank parameter (or out of order)";
      break;
    }
    const model::Parameter& want = reference.weights[next];
    EXPECT_EQ(got.value.shape(), want.value.shape()) << got.name;
    if (got.value.shape() != want.value.shape()) continue;
    const double difference = relative_difference(got.value, want.value);
    worst.weight = std::max(worst.weight, difference);
    EXPECT_LT(difference, tolerance) << got.name;
  }
  return worst;
}

}  // namespace moebench::train
