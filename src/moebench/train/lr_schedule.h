#pragma once
// The learning rate as Megatron's OptimizerParamScheduler computes it, in
// samples: linear warmup from lr-warmup-init to lr over the warmup samples,
// then constant, linear or cosine decay to min-lr at the end of the decay
// samples, and min-lr after. Iteration-based flags become samples by
// multiplying with the global batch size, as Megatron does.
//
// Megatron advances the scheduler by one global batch after each successful
// optimizer step, so the update of iteration i (counting from 1) uses
// lr_at((i - 1) x GBS) when no step was skipped before it.
#include "moebench/train/train_config.h"

namespace moebench::train {

class LearningRateSchedule {
 public:
  LearningRateSchedule(double max_lr, double min_lr, double warmup_init_lr, double warmup_samples,
                       double decay_samples, LrDecayStyle style);
  // The schedule of a run: decay over --lr-decay-iters/-samples (default: the
  // whole run); warmup over --lr-warmup-iters/-samples or a fraction of the decay.
  static LearningRateSchedule from_config(const TrainConfig& config, long long global_batch);

  double lr_at(double samples) const;

  double warmup_samples() const { return warmup_samples_; }
  double decay_samples() const { return decay_samples_; }

 private:
  double max_lr_;
  double min_lr_;
  double warmup_init_lr_;
  double warmup_samples_;
  double decay_samples_;
  LrDecayStyle style_;
};

}  // namespace moebench::train
