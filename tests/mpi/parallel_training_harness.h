#pragma once
// What the parallel-training tests share: a zoo model trained for a few
// iterations under a parallel mapping on the ranks of a communicator, its
// records and final weights (gathered over tp into the one-rank tensors), and
// the comparison with the one-rank run of the same global batches. Every rank
// also runs the one-rank reference itself: the models are tiny and it needs
// no communication.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "moebench/config/model_config.h"
#include "moebench/config/parallel_config.h"
#include "moebench/config/resolve.h"
#include "moebench/config/validation.h"
#include "moebench/data/mock_dataset.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/model/gpt_model.h"
#include "moebench/train/trainer.h"

namespace moebench::train::testing {

inline constexpr int kIterations = 3;
inline constexpr double kTolerance = 1e-5;  // relative, float32

// How the ranks train; the one-rank reference keeps everything but TP and EP.
struct ParallelMapping {
  int tensor = 1;                        // TP
  bool sequence_parallel = true;         // --sequence-parallel (the zoo configs' setting; off with TP 1)
  int expert = 1;                        // EP
  bool distributed_optimizer = false;
  std::string dispatcher = {};           // --moe-token-dispatcher-type; empty: the model's own
  int micro_batch = 1;                   // MBS
  std::vector<std::string> extra_flags = {};  // e.g. {"--num-experts", ""} for a dense variant
  std::filesystem::path save = {};  // --save: a checkpoint at the end (empty: none)

  ParallelMapping one_rank() const {
    ParallelMapping reference = *this;
    reference.tensor = reference.expert = 1;
    reference.save.clear();
    return reference;
  }
};

struct Outcome {
  std::vector<IterationRecord> records;
  std::vector<model::Parameter> weights;  // one-rank names and shapes, final values (copies)
};

struct Run {
  config::ModelConfig model;
  TrainingSetup setup;
};

// The zoo model with its repository configuration, shortened: GBS 8 (so 4
// ranks still run 2 microbatches each), a warmup shorter than the run, no
// evaluation, and small gradient buckets so that every buffer is reduced in
// several collectives. Validated as `moebench run` validates it.
inline Run configured_run(const std::string& model, int world_size, const ParallelMapping& mapping) {
  config::Variables variables = {{"MODEL", model},
                                 {"CLUSTER", "local"},
                                 {"TP", std::to_string(mapping.tensor)},
                                 {"EP", std::to_string(mapping.expert)}};
  if (!mapping.dispatcher.empty()) variables["MOE_TOKEN_DISPATCHER"] = mapping.dispatcher;
  std::vector<std::string> flags = {"--micro-batch-size", std::to_string(mapping.micro_batch),
                                    "--global-batch-size", "8", "--train-iters", std::to_string(kIterations),
                                    "--lr-warmup-iters", "1", "--eval-iters", "0", "--ddp-bucket-size", "20000"};
  flags.insert(flags.end(), mapping.extra_flags.begin(), mapping.extra_flags.end());
  config::ResolvedConfig resolved =
      config::resolve({std::filesystem::path(MOEBENCH_SOURCE_DIR) / "configs", variables, flags});
  // Every rank also trains the one-rank reference: no checkpoints unless asked, or they would share a directory.
  resolved.flags.erase("--save");
  if (!mapping.save.empty()) resolved.flags.set("--save", {mapping.save.string()});
  if (!mapping.sequence_parallel) resolved.flags.erase("--sequence-parallel");
  Run run;
  run.setup.parallel = config::parallel_config_from_flags(resolved.flags, world_size);
  run.setup.parallel.distributed_optimizer = mapping.distributed_optimizer;
  run.setup.train = train_config_from_flags(resolved.flags, run.setup.parallel.global_batch);
  run.model = config::model_config_from_flags(resolved.flags, run.setup.parallel.tensor);
  config::validate(run.model, run.setup.parallel);
  run.setup.seq_length = run.model.seq_length;
  run.setup.model_args = resolved.flags.to_arguments();  // what a checkpoint records, as `moebench run`
  return run;
}

// The one-rank tensor of a tensor-parallel parameter, gathered from the tp
// ranks' slices as Parameter::tensor_parallel places them (collective over tp).
inline Tensor gathered_over_tensor_parallel(const model::Parameter& p, dist::Communicator& tp) {
  const model::TensorParallelSplit& split = p.tensor_parallel;
  if (!split.is_split()) return p.value.clone();
  const std::vector<int64_t> local_shape = p.value.shape();
  std::vector<int64_t> stacked_shape = local_shape;
  stacked_shape.insert(stacked_shape.begin(), tp.size());
  Tensor stacked = Tensor::empty(stacked_shape, DType::F32);
  tp.all_gather(p.value.contiguous(), stacked);
  Tensor whole = Tensor::empty(split.global_shape(local_shape), DType::F32);
  const int64_t dim = split.partition_dim;
  for (int rank = 0; rank < tp.size(); ++rank) {
    const Tensor local = stacked.slice(0, rank, rank + 1).view(local_shape);
    for (const model::SplitRange& range : split.of_rank(rank).ranges(local_shape))
      whole.slice(dim, range.global_offset, range.global_offset + range.size)
          .copy_from(local.slice(dim, range.local_offset, range.local_offset + range.size));
  }
  return whole;
}

inline Outcome train_on(dist::Communicator& world, const std::string& model, const ParallelMapping& mapping) {
  const Run run = configured_run(model, world.size(), mapping);
  const dist::ParallelState state(world, {.world_size = world.size(),
                                          .tensor = mapping.tensor,
                                          .expert = mapping.expert,
                                          .expert_tensor = run.setup.parallel.expert_tensor});
  const uint64_t seed = uint64_t(run.setup.train.seed);
  model::GPTModel gpt(run.model, seed, model::ModelConventions{}, model::ModelPlacement::cpu(), state);
  TrainableModelRef<model::GPTModel> trainable(gpt);
  const data::MockDataset train_data(run.model.seq_length, run.model.vocab_size, seed, data::Split::Train);
  const data::MockDataset validation_data(run.model.seq_length, run.model.vocab_size, seed,
                                          data::Split::Validation);
  Outcome outcome;
  Trainer trainer(trainable, run.setup, state, train_data, validation_data,
                  {[&outcome](const IterationRecord& r) { outcome.records.push_back(r); }, {}});
  trainer.train();
  for (const model::Parameter* p : gpt.parameters())
    outcome.weights.push_back({p->name, gathered_over_tensor_parallel(*p, state.group(GroupKind::kTensor)), Tensor(),
                               Tensor(), p->weight_decay, p->is_expert});
  return outcome;
}

inline double relative_difference(double value, double reference) {
  return std::abs(value - reference) / std::max(std::abs(reference), 1e-30);
}

// Largest |value - reference| over the parameter, relative to its largest
// reference magnitude: Adam moves every element by about lr, so an
// element-wise ratio would judge elements that sit near zero too harshly.
inline double relative_difference(const Tensor& value, const Tensor& reference) {
  const float* v = value.data<float>();
  const float* r = reference.data<float>();
  double difference = 0, magnitude = 0;
  for (int64_t i = 0; i < value.numel(); ++i) {
    difference = std::max(difference, std::abs(double(v[i]) - double(r[i])));
    magnitude = std::max(magnitude, std::abs(double(r[i])));
  }
  return difference / std::max(magnitude, 1e-30);
}

struct WorstDifferences {
  double loss = 0, grad_norm = 0, weight = 0;
};

// Expects the parallel run's losses, gradient norms and weights to equal the
// one-rank run's within kTolerance. Each parallel weight is compared with the
// one-rank weight of its name (with EP a rank holds some experts only).
inline WorstDifferences expect_same_training(const Outcome& parallel, const Outcome& reference) {
  WorstDifferences worst;
  EXPECT_EQ(parallel.records.size(), size_t(kIterations));
  EXPECT_EQ(reference.records.size(), size_t(kIterations));
  for (size_t i = 0; i < std::min(parallel.records.size(), reference.records.size()); ++i) {
    SCOPED_TRACE("iteration " + std::to_string(i + 1));
    const IterationRecord& got = parallel.records[i];
    const IterationRecord& want = reference.records[i];
    EXPECT_FALSE(got.skipped);
    worst.loss = std::max({worst.loss, relative_difference(got.lm_loss, want.lm_loss),
                           relative_difference(got.load_balancing_loss, want.load_balancing_loss)});
    worst.grad_norm = std::max(worst.grad_norm, relative_difference(got.grad_norm, want.grad_norm));
    EXPECT_LT(relative_difference(got.lm_loss, want.lm_loss), kTolerance) << got.lm_loss << " vs " << want.lm_loss;
    EXPECT_LT(relative_difference(got.load_balancing_loss, want.load_balancing_loss), kTolerance)
        << got.load_balancing_loss << " vs " << want.load_balancing_loss;
    EXPECT_LT(relative_difference(got.grad_norm, want.grad_norm), kTolerance)
        << got.grad_norm << " vs " << want.grad_norm;
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
    EXPECT_LT(difference, kTolerance) << got.name;
  }
  return worst;
}

}  // namespace moebench::train::testing
