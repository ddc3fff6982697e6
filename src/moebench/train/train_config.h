#pragma once
// The training hyper-parameters of a run, typed, with Megatron-LM's defaults
// for what the flags leave out: length, learning-rate schedule, Adam, gradient
// clipping, logging, evaluation, exit conditions and output places.
#include <filesystem>
#include <string>
#include <vector>

#include "moebench/config/flag_map.h"
#include "moebench/train/optimizer_precision.h"

namespace moebench::train {

enum class LrDecayStyle { Constant, Linear, Cosine };

struct TrainConfig {
  // Length: --train-iters, or --train-samples from which Megatron derives
  // train_iters = train_samples / GBS (rounded down).
  long long train_iters = 0;
  long long train_samples = 0;  // 0: the run is iteration-based

  // Learning rate, as Megatron's OptimizerParamScheduler (lr_schedule.h).
  double lr = 0.0;
  double min_lr = 0.0;
  LrDecayStyle lr_decay_style = LrDecayStyle::Linear;
  long long lr_warmup_iters = 0;
  long long lr_warmup_samples = 0;
  double lr_warmup_fraction = -1.0;  // negative: not given
  double lr_warmup_init = 0.0;
  long long lr_decay_iters = 0;      // 0: not given (defaults to the training length)
  long long lr_decay_samples = 0;

  // Adam with decoupled weight decay, gradient clipping by global norm.
  double weight_decay = 0.01;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_eps = 1e-8;
  double clip_grad = 1.0;  // 0: no clipping
  OptimizerPrecision optimizer_precision;  // --use-precision-aware-optimizer and its dtypes

  // Elements per gradient-reduction bucket (--ddp-bucket-size); 0: Megatron's
  // default, max(40M, 1M x DP).
  long long ddp_bucket_size = 0;

  long long seed = 1234;
  int log_interval = 100;
  int eval_interval = 1000;
  int eval_iters = 100;
  double exit_duration_in_mins = 0.0;  // 0: no time limit

  // Checkpoints, as Megatron's --save / --load family. A Hugging Face
  // directory given to --load is read by `moebench run` itself; `load` here
  // is a native checkpoint.
  std::filesystem::path save;  // empty: no checkpoints
  long long save_interval = 0;  // 0: only at the end of training
  bool save_optim = true;
  bool save_rng = true;
  std::filesystem::path load;  // empty: start from initialised weights
  bool finetune = false;        // weights only; the iteration starts at 0
  bool load_optim = true;
  bool load_rng = true;

  std::filesystem::path output_dir;
  std::filesystem::path tensorboard_dir;  // empty: <output_dir>/tensorboard
  // true: a NaN/Inf loss or gradient stops the run; false: the iteration is skipped and counted.
  bool check_for_nan = true;
  // Profiling (obs/profiler.h): iterations profile_step_start..profile_step_end,
  // both included, on the ranks listed; profile_trace empty: no trace file.
  bool profile = false;
  long long profile_step_start = 10;
  long long profile_step_end = 12;
  std::vector<int> profile_ranks = {0};
  std::filesystem::path profile_trace;
  bool mock_data = false;
  bool has_data_path = false;
};

// Reads the training flags; `global_batch` converts between iterations and
// samples. Throws an Error for a missing --lr or length and for conflicting
// flags (both --train-iters and --train-samples, an iteration-based warmup
// with a sample-based run, --lr-warmup-fraction with explicit warmup, ...).
TrainConfig train_config_from_flags(const config::FlagMap& flags, long long global_batch);

const char* lr_decay_style_name(LrDecayStyle style);

}  // namespace moebench::train
