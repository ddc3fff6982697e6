#pragma once
// The training loop of Megatron's pretrain(): per iteration, gradient
// accumulation over GBS / (MBS x DP) microbatches, the data-parallel gradient
// reduction, gradient clipping, an Adam step at the scheduled learning rate
// (replicated, or sharded with --use-distributed-optimizer), the expert-bias
// update, and a record of the iteration for obs; evaluation every
// eval-interval iterations; stopping at train-iters or after
// exit-duration-in-mins. Every rank of the run calls train() together; the
// records (losses averaged over data-parallel ranks) are the same on each.
#include <cstdint>
#include <functional>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "moebench/config/parallel_config.h"
#include "moebench/data/microbatch.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/obs/iteration_log.h"
#include "moebench/obs/profiler.h"
#include "moebench/obs/timers.h"
#include "moebench/train/gradient_reduction.h"
#include "moebench/train/lr_schedule.h"
#include "moebench/train/optimizer.h"
#include "moebench/train/trainable_model.h"
#include "moebench/train/train_config.h"

namespace moebench::train {

struct TrainingSetup {
  TrainConfig train;
  config::ParallelConfig parallel;  // batch sizes, world size, --use-distributed-optimizer
  int64_t seq_length = 0;
  double flops_per_iteration = 0;   // flops_per_iteration(model, GBS), for TFLOP/s per GPU
  std::vector<std::string> model_args;  // the model's Megatron flags, recorded in checkpoints
};

// Where records go; either may be empty.
struct TrainingObserver {
  std::function<void(const IterationRecord&)> on_iteration;
  std::function<void(const ValidationRecord&)> on_validation;
};

struct TrainingSummary {
  int64_t iterations = 0;
  int64_t consumed_samples = 0;
  int64_t skipped_iterations = 0;
  int64_t nan_iterations = 0;
  bool stopped_by_time_limit = false;  // exit-duration-in-mins reached before train-iters
  double last_lm_loss = 0;
};

class Trainer {
 public:
  // Keeps references: all must outlive the trainer. `parallel_state` is this
  // rank's, built for setup.parallel's sizes. Re-binds the model's parameter
  // values and gradients to the views of GradientReduction's buffers, then
  // resumes from setup.train.load when given (collective).
  Trainer(TrainableModel& model, const TrainingSetup& setup, const dist::ParallelState& parallel_state,
          const data::MicrobatchSource& train_data, const data::MicrobatchSource& validation_data,
          TrainingObserver observer);

  // Runs to the end. A NaN/Inf loss or gradient norm throws an Error naming
  // the iteration unless check_for_nan is off; then the iteration makes no
  // update and is counted as skipped (and as NaN when the loss was).
  TrainingSummary train();

  // Saves the current state as a checkpoint under `root` (collective):
  // --save-interval and the end of train() call it; so does a conversion.
  void save_checkpoint(const std::filesystem::path& root);
  int64_t completed_iterations() const { return completed_iterations_; }

 private:
  struct StepResult {
    double lm_loss = 0;
    double load_balancing_loss = 0;
    double grad_norm = 0;
    bool nan_loss = false;
    bool skipped = false;
  };
  StepResult train_step(int64_t iteration);
  double evaluate();
  // The mean over data-parallel ranks of each rank's `values`, in place.
  void average_over_data_parallel(std::vector<double>& values) const;
  // First sample of microbatch `microbatch` of this data-parallel rank in the
  // global batch that starts at `batch_start` (Megatron's pretraining sampler).
  int64_t microbatch_start(int64_t batch_start, int microbatch) const;

  TrainableModel& model_;
  TrainingSetup setup_;
  const dist::ParallelState& parallel_state_;
  const data::MicrobatchSource& train_data_;
  const data::MicrobatchSource& validation_data_;
  TrainingObserver observer_;
  GradientReduction gradients_;
  std::unique_ptr<Optimizer> optimizer_;  // AdamOptimizer or DistributedOptimizer
  LearningRateSchedule schedule_;
  Timers timers_;
  obs::Profiler profiler_;
  int64_t completed_iterations_ = 0;  // at a resume, the checkpoint's iteration
  int64_t consumed_samples_ = 0;
  int64_t consumed_validation_samples_ = 0;
  int64_t scheduler_samples_ = 0;  // advances only with applied updates, as Megatron's scheduler
  int data_parallel_rank_ = 0;
};

}  // namespace moebench::train
