#pragma once
// The training loop of Megatron's pretrain(): per iteration, gradient
// accumulation over GBS / (MBS x DP) microbatches, the data-parallel gradient
// reduction, gradient clipping, an Adam step at the scheduled learning rate
// (replicated, or sharded with --use-distributed-optimizer), the expert-bias
// update, and a record of the iteration for obs; evaluation every
// eval-interval iterations; stopping at train-iters or after
// exit-duration-in-mins. Every rank of the run calls train() together; the
// records (losses averaged over data-parallel ranks) are the same on each.
//
// With PP > 1 the model is this rank's pipeline stage and each iteration's
// microbatches run through Megatron's 1F1B or interleaved schedule
// (run_pipeline_schedule), activations and their gradients moving between
// stages through PipelineP2P. The lm loss exists on the last stage and each
// stage has its own MoE layers' aux losses: the trainer sums both over the pp
// group, so every rank (rank 0, which logs, included) records the losses of
// the whole model, as one rank would log them, and all ranks take the same
// NaN and skip decisions.
#include <cstdint>
#include <functional>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "moebench/config/parallel_config.h"
#include "moebench/data/microbatch.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/dist/pipeline_p2p.h"
#include "moebench/obs/iteration_log.h"
#include "moebench/obs/profiler.h"
#include "moebench/obs/timers.h"
#include "moebench/train/gradient_reduction.h"
#include "moebench/train/lr_schedule.h"
#include "moebench/train/optimizer.h"
#include "moebench/train/pipeline_schedule.h"
#include "moebench/train/trainable_model.h"
#include "moebench/train/train_config.h"
#include "moebench/train/training_pipeline_stage.h"

namespace moebench::train {

struct TrainingSetup {
  TrainConfig train;
  config::ParallelConfig parallel;  // batch sizes, world size, --use-distributed-optimizer
  int64_t seq_length = 0;
  double flops_per_iteration = 0;   // flops_per_iteration(model, GBS), for TFLOP/s per GPU
  std::vector<std::string> model_args;  // the model's Megatron flags, recorded in checkpoints
  int64_t hidden_size = 0;  // PP > 1: the activations between stages are [MBS, seq_length (/ TP under SP), hidden_size]
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
  // The forwards and backwards of one iteration's microbatches, without and
  // with pipeline parallelism; each adds its loss sums (this stage's) to `step`.
  void forward_backward(StepResult& step);
  void forward_backward_pipelined(StepResult& step);
  double evaluate();
  // In place: each value summed over the pipeline stages (each stage holds
  // its part of a loss), then averaged over the data-parallel ranks.
  void reduce_over_model(std::vector<double>& values) const;
  data::Microbatch read_microbatch(const data::MicrobatchSource& source, int64_t batch_start, int microbatch) const;
  // This rank's stage for the pipeline schedules (PP > 1).
  TrainingPipelineStage pipeline_stage(std::function<data::Microbatch(int)> microbatch, double loss_scale,
                                       TrainingPipelineStage::Mode mode);
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
  std::optional<dist::PipelineP2P> pipeline_p2p_;    // PP > 1
  std::optional<PipelineSchedule> pipeline_schedule_;  // this rank's, PP > 1
};

}  // namespace moebench::train
