#include "moebench/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>

#include "moebench/core/error.h"
#ifdef MOEBENCH_WITH_CUDA
#include "moebench/core/cuda_allocator.h"
#endif
#include "moebench/obs/host_memory.h"
#include "moebench/train/adam_optimizer.h"
#include "moebench/train/distributed_optimizer.h"
#include "moebench/train/training_checkpoint.h"

namespace moebench::train {
namespace {

AdamOptions adam_options(const TrainConfig& t) {
  AdamOptions options;
  options.beta1 = t.adam_beta1;
  options.beta2 = t.adam_beta2;
  options.eps = t.adam_eps;
  options.weight_decay = t.weight_decay;
  options.clip_grad = t.clip_grad;
  options.precision = t.optimizer_precision;
  return options;
}

int64_t bucket_elements(const TrainingSetup& setup) {
  return setup.train.ddp_bucket_size > 0 ? setup.train.ddp_bucket_size
                                         : default_bucket_elements(setup.parallel.data_parallel());
}

bool on_gpu(TrainableModel& model) {
  const std::vector<model::Parameter*> parameters = model.parameters();
  return !parameters.empty() && parameters.front()->value.device().is_cuda();
}

std::unique_ptr<Optimizer> make_optimizer(TrainableModel& model, const GradientReduction& gradients,
                                          const dist::ParallelState& state, const TrainConfig& t) {
  // On a GPU the distributed optimizer runs with one data-parallel rank only
  // (GradientReduction rejects more): its single shard is the whole model,
  // and plain Adam is the same update.
  if (gradients.sync() == GradientSync::kReduceScatter && !on_gpu(model))
    return std::make_unique<DistributedOptimizer>(gradients, state, adam_options(t));
  return std::make_unique<AdamOptimizer>(model.parameters(), adam_options(t), &state);
}

// The profiled window of this rank. Several profiled ranks write one trace
// each: "trace.json" becomes "trace.rank3.json".
obs::ProfilerOptions profiler_options(const TrainConfig& t, int rank, bool gpu) {
  obs::ProfilerOptions options;
  options.enabled = t.profile && std::ranges::find(t.profile_ranks, rank) != t.profile_ranks.end();
  options.first_iteration = t.profile_step_start;
  options.last_iteration = t.profile_step_end;
  options.trace = t.profile_trace;
  if (!options.trace.empty() && t.profile_ranks.size() > 1)
    options.trace.replace_filename(options.trace.stem().string() + ".rank" + std::to_string(rank) +
                                   options.trace.extension().string());
  options.rank = rank;
  options.gpu = gpu;
  return options;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

// The CUDA caching allocator's peak since the last reset (device 0); 0 without CUDA.
#ifdef MOEBENCH_WITH_CUDA
int current_device() {
  int device = 0;
  cudaGetDevice(&device);
  return device;
}
void reset_peak_device_memory() { CudaCachingAllocator::instance().reset_peak(current_device()); }
int64_t peak_device_memory() {
  return int64_t(CudaCachingAllocator::instance().stats(current_device()).peak_allocated_bytes);
}
void synchronize_device() { cudaDeviceSynchronize(); }
#else
void reset_peak_device_memory() {}
int64_t peak_device_memory() { return 0; }
void synchronize_device() {}
#endif

constexpr const char* kSkipAdvice =
    "; lower --lr or check the data, or pass --no-check-for-nan-in-loss-and-grad to skip such iterations";

}  // namespace

Trainer::Trainer(TrainableModel& model, const TrainingSetup& setup, const dist::ParallelState& parallel_state,
                 const data::MicrobatchSource& train_data, const data::MicrobatchSource& validation_data,
                 TrainingObserver observer)
    : model_(model),
      setup_(setup),
      parallel_state_(parallel_state),
      train_data_(train_data),
      validation_data_(validation_data),
      observer_(std::move(observer)),
      gradients_(model.parameters(), parallel_state,
                 setup.parallel.distributed_optimizer ? GradientSync::kReduceScatter : GradientSync::kAllReduce,
                 bucket_elements(setup)),
      optimizer_(make_optimizer(model, gradients_, parallel_state, setup.train)),
      schedule_(LearningRateSchedule::from_config(setup.train, setup.parallel.global_batch)),
      profiler_(profiler_options(setup.train, parallel_state.world_rank(), on_gpu(model))),
      data_parallel_rank_(parallel_state.membership(GroupKind::kData).rank_in_group) {
  const auto& p = setup_.parallel;
  if (parallel_state.grid().data_parallel_size() != p.data_parallel())
    throw Error("the parallel state has DP=" + std::to_string(parallel_state.grid().data_parallel_size()) +
                " but the setup's world of " + std::to_string(p.world_size) + " ranks has DP=" +
                std::to_string(p.data_parallel()));
  if (p.num_microbatches() < 1 || p.global_batch != p.num_microbatches() * p.micro_batch * p.data_parallel())
    throw Error("GBS=" + std::to_string(p.global_batch) + " must be a positive multiple of MBS x DP = " +
                std::to_string(p.micro_batch) + " x " + std::to_string(p.data_parallel()));
  if (p.pipeline > 1) {
    dist::Communicator& pipeline = parallel_state.group(GroupKind::kPipeline);
    if (pipeline.size() != p.pipeline)
      throw Error("the parallel state has a pp group of " + std::to_string(pipeline.size()) +
                  " ranks but the setup has PP=" + std::to_string(p.pipeline));
    if (setup_.hidden_size <= 0 || setup_.seq_length <= 0)
      throw Error("PP=" + std::to_string(p.pipeline) + " needs the shape of the activations between stages: set "
                  "TrainingSetup's seq_length and hidden_size, got " + std::to_string(setup_.seq_length) + " and " +
                  std::to_string(setup_.hidden_size));
    // Under sequence parallelism each tp rank passes on its share of the tokens (GPTModel's [B, S / TP, h]).
    const int64_t sequence_shards = p.sequence_parallel ? p.tensor : 1;
    pipeline_p2p_.emplace(
        pipeline, std::vector<int64_t>{p.micro_batch, setup_.seq_length / sequence_shards, setup_.hidden_size},
        DType::F32);
    pipeline_schedule_ = pipeline_schedule(p.pipeline, p.virtual_stages, p.num_microbatches(), pipeline.rank());
  }
  if (!setup_.train.load.empty()) {
    const ckpt::TrainingProgress resumed =
        load_training_checkpoint(setup_.train.load, model_, *optimizer_, setup_.train);
    completed_iterations_ = resumed.iteration;
    consumed_samples_ = resumed.consumed_samples;
    consumed_validation_samples_ = resumed.consumed_validation_samples;
    scheduler_samples_ = resumed.scheduler_samples;
  }
}

void Trainer::save_checkpoint(const std::filesystem::path& root) {
  const TrainConfig& t = setup_.train;
  const TrainingCheckpointContents contents{
      {completed_iterations_, consumed_samples_, consumed_validation_samples_, scheduler_samples_},
      t.save_optim, t.save_rng, t.seed, setup_.model_args};
  save_training_checkpoint(root, model_, *optimizer_, parallel_state_, contents);
}

int64_t Trainer::microbatch_start(int64_t batch_start, int microbatch) const {
  const int64_t mbs = setup_.parallel.micro_batch;
  return batch_start + int64_t(microbatch) * mbs * setup_.parallel.data_parallel() + data_parallel_rank_ * mbs;
}

data::Microbatch Trainer::read_microbatch(const data::MicrobatchSource& source, int64_t batch_start,
                                         int microbatch) const {
  return source.microbatch(microbatch_start(batch_start, microbatch), setup_.parallel.micro_batch);
}

TrainingPipelineStage Trainer::pipeline_stage(std::function<data::Microbatch(int)> microbatch, double loss_scale,
                                              TrainingPipelineStage::Mode mode) {
  return TrainingPipelineStage(model_, std::move(microbatch), pipeline_p2p_->stage(), pipeline_p2p_->stages(),
                               setup_.parallel.virtual_stages, loss_scale, mode);
}

void Trainer::forward_backward(StepResult& step) {
  const int microbatches = setup_.parallel.num_microbatches();
  for (int m = 0; m < microbatches; ++m) {
    timers_.start("batch-generator");
    const data::Microbatch batch = read_microbatch(train_data_, consumed_samples_, m);
    timers_.stop("batch-generator");
    const model::ForwardOutput out = model_.forward(batch);
    // Each microbatch's loss is a mean over its tokens; scaling by 1/microbatches
    // makes the accumulated gradient that of the mean over the global batch.
    model_.backward(1.0 / microbatches);
    step.lm_loss += out.lm_loss / microbatches;
    step.load_balancing_loss += out.aux_loss / microbatches;
  }
}

void Trainer::forward_backward_pipelined(StepResult& step) {
  const int microbatches = setup_.parallel.num_microbatches();
  const auto read = [this](int m) {
    timers_.start("batch-generator");
    data::Microbatch batch = read_microbatch(train_data_, consumed_samples_, m);
    timers_.stop("batch-generator");
    return batch;
  };
  // The same 1/microbatches scaling, applied by every stage's backwards.
  TrainingPipelineStage stage = pipeline_stage(read, 1.0 / microbatches, TrainingPipelineStage::Mode::kTrain);
  run_pipeline_schedule(*pipeline_schedule_, stage, *pipeline_p2p_);
  step.lm_loss = stage.lm_loss_sum() / microbatches;
  step.load_balancing_loss = stage.aux_loss_sum() / microbatches;
}

Trainer::StepResult Trainer::train_step(int64_t iteration) {
  StepResult step;
  const obs::ProfileRange range("iteration " + std::to_string(iteration));
  model_.zero_grad();
  timers_.start("forward-backward");
  if (pipeline_schedule_)
    forward_backward_pipelined(step);
  else
    forward_backward(step);
  // Weight gradients a model still defers (--moe-wgrad-microbatches) belong to this step.
  model_.flush_weight_gradients();
  timers_.stop("forward-backward");
  timers_.start("all-grads-sync");
  gradients_.reduce();
  timers_.stop("all-grads-sync");
  // The log shows the loss over the global batch, as one rank would compute it.
  std::vector<double> losses = {step.lm_loss, step.load_balancing_loss};
  reduce_over_model(losses);
  step.lm_loss = losses[0];
  step.load_balancing_loss = losses[1];

  step.nan_loss = !std::isfinite(step.lm_loss) || !std::isfinite(step.load_balancing_loss);
  if (step.nan_loss && setup_.train.check_for_nan)
    throw Error("iteration " + std::to_string(iteration) + ": the loss is not finite (lm loss " +
                number(step.lm_loss) + ", load-balancing loss " + number(step.load_balancing_loss) + ")" +
                kSkipAdvice);
  if (step.nan_loss) {
    step.grad_norm = NAN;
    step.skipped = true;
    return step;
  }

  timers_.start("optimizer");
  const OptimizerStep update = optimizer_->step(schedule_.lr_at(double(scheduler_samples_)));
  timers_.stop("optimizer");
  step.grad_norm = update.grad_norm;
  step.skipped = !update.applied;
  if (step.skipped && setup_.train.check_for_nan)
    throw Error("iteration " + std::to_string(iteration) + ": the gradient norm is " + number(update.grad_norm) +
                kSkipAdvice);
  if (update.applied) {
    scheduler_samples_ += setup_.parallel.global_batch;
    model_.update_expert_bias(parallel_state_.group(GroupKind::kTensorAndDataWithContext));
  }
  return step;
}

double Trainer::evaluate() {
  const int microbatches = setup_.parallel.num_microbatches();
  double loss = 0;
  for (int i = 0; i < setup_.train.eval_iters; ++i) {
    const auto read = [this](int m) { return read_microbatch(validation_data_, consumed_validation_samples_, m); };
    if (pipeline_p2p_) {
      TrainingPipelineStage stage = pipeline_stage(read, 1.0, TrainingPipelineStage::Mode::kForwardOnly);
      run_pipeline_forward_only(setup_.parallel.virtual_stages, microbatches, stage, *pipeline_p2p_);
      loss += stage.lm_loss_sum();
    } else {
      for (int m = 0; m < microbatches; ++m) loss += model_.forward(read(m)).lm_loss;
    }
    consumed_validation_samples_ += setup_.parallel.global_batch;
  }
  std::vector<double> mean = {loss / (double(setup_.train.eval_iters) * microbatches)};
  reduce_over_model(mean);
  return mean[0];
}

void Trainer::reduce_over_model(std::vector<double>& values) const {
  dist::Communicator& pipeline = parallel_state_.group(GroupKind::kPipeline);
  dist::Communicator& data = parallel_state_.group(GroupKind::kDataWithContext);
  if (pipeline.size() == 1 && data.size() == 1) return;
  Tensor sums = Tensor::from_vector(values);
  if (pipeline.size() > 1) pipeline.all_reduce(sums, dist::ReduceOp::kSum);
  if (data.size() > 1) data.all_reduce(sums, dist::ReduceOp::kSum);
  for (size_t i = 0; i < values.size(); ++i) values[i] = sums.data<double>()[i] / data.size();
}

TrainingSummary Trainer::train() {
  const TrainConfig& t = setup_.train;
  const auto& p = setup_.parallel;
  const auto start = std::chrono::steady_clock::now();
  const bool validate = t.eval_iters > 0;
  TrainingSummary summary;
  int64_t last_evaluated = 0;
  int64_t last_saved = completed_iterations_;
  summary.iterations = completed_iterations_;
  summary.consumed_samples = consumed_samples_;
  for (int64_t iteration = completed_iterations_ + 1; iteration <= t.train_iters; ++iteration) {
    reset_peak_device_memory();
    const auto iteration_start = std::chrono::steady_clock::now();
    profiler_.begin_iteration(iteration);
    const StepResult step = train_step(iteration);
    synchronize_device();  // the step's GPU work is done before the clock stops
    const double seconds = seconds_since(iteration_start);
    profiler_.end_iteration(iteration);

    consumed_samples_ += p.global_batch;
    summary.iterations = iteration;
    summary.consumed_samples = consumed_samples_;
    summary.skipped_iterations += step.skipped;
    summary.nan_iterations += step.nan_loss;
    summary.last_lm_loss = step.lm_loss;

    IterationRecord record;
    record.iteration = iteration;
    record.train_iters = t.train_iters;
    record.consumed_samples = consumed_samples_;
    record.global_batch_size = p.global_batch;
    record.elapsed_ms = seconds * 1e3;
    record.tflops_per_gpu = setup_.flops_per_iteration / seconds / p.world_size / 1e12;
    record.tokens_per_second = double(p.global_batch) * double(setup_.seq_length) / seconds;
    record.learning_rate = schedule_.lr_at(double(scheduler_samples_));
    record.lm_loss = step.lm_loss;
    record.load_balancing_loss = step.load_balancing_loss;
    record.grad_norm = step.grad_norm;
    record.skipped = step.skipped;
    record.nan_loss = step.nan_loss;
    record.skipped_iterations = summary.skipped_iterations;
    record.nan_iterations = summary.nan_iterations;
    record.peak_rss_bytes = peak_resident_bytes();
    record.peak_device_memory_bytes = peak_device_memory();
    record.timers_ms = timers_.read_and_reset_ms();
    if (observer_.on_iteration) observer_.on_iteration(record);

    if (validate && t.eval_interval > 0 && iteration % t.eval_interval == 0) {
      const ValidationRecord validation{iteration, evaluate()};
      last_evaluated = iteration;
      if (observer_.on_validation) observer_.on_validation(validation);
    }
    completed_iterations_ = iteration;
    if (!t.save.empty() && t.save_interval > 0 && iteration % t.save_interval == 0) {
      save_checkpoint(t.save);
      last_saved = iteration;
    }
    if (t.exit_duration_in_mins > 0 && seconds_since(start) / 60.0 > t.exit_duration_in_mins) {
      summary.stopped_by_time_limit = iteration < t.train_iters;
      break;
    }
  }
  profiler_.finish();
  // Megatron evaluates once more at the end of training.
  if (validate && last_evaluated != summary.iterations) {
    const ValidationRecord validation{summary.iterations, evaluate()};
    if (observer_.on_validation) observer_.on_validation(validation);
  }
  if (!t.save.empty() && last_saved != completed_iterations_) save_checkpoint(t.save);
  return summary;
}

}  // namespace moebench::train
