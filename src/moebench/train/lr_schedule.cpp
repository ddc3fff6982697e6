#include "moebench/train/lr_schedule.h"

#include <cmath>
#include <numbers>
#include <string>

#include "moebench/core/error.h"

namespace moebench::train {

LearningRateSchedule::LearningRateSchedule(double max_lr, double min_lr, double warmup_init_lr,
                                           double warmup_samples, double decay_samples, LrDecayStyle style)
    : max_lr_(max_lr),
      min_lr_(min_lr),
      warmup_init_lr_(warmup_init_lr),
      warmup_samples_(warmup_samples),
      decay_samples_(decay_samples),
      style_(style) {
  if (decay_samples_ <= 0)
    throw Error("learning-rate decay covers " + std::to_string(decay_samples_) + " samples; it must be positive");
  if (warmup_samples_ < 0 || warmup_samples_ >= decay_samples_)
    throw Error("learning-rate warmup of " + std::to_string(warmup_samples_) +
                " samples must be shorter than the decay of " + std::to_string(decay_samples_) +
                " samples; shorten the warmup or lengthen --lr-decay-iters/--lr-decay-samples");
}

LearningRateSchedule LearningRateSchedule::from_config(const TrainConfig& config, long long global_batch) {
  double decay = 0;
  double warmup = 0;
  if (config.train_samples == 0) {
    decay = double(config.lr_decay_iters > 0 ? config.lr_decay_iters : config.train_iters) * double(global_batch);
    warmup = double(config.lr_warmup_iters) * double(global_batch);
  } else {
    decay = double(config.lr_decay_samples > 0 ? config.lr_decay_samples : config.train_samples);
    warmup = double(config.lr_warmup_samples);
  }
  if (config.lr_warmup_fraction >= 0) warmup = config.lr_warmup_fraction * decay;
  return LearningRateSchedule(config.lr, config.min_lr, config.lr_warmup_init, warmup, decay,
                              config.lr_decay_style);
}

double LearningRateSchedule::lr_at(double samples) const {
  if (warmup_samples_ > 0 && samples <= warmup_samples_)
    return warmup_init_lr_ + (max_lr_ - warmup_init_lr_) * samples / warmup_samples_;
  if (style_ == LrDecayStyle::Constant) return max_lr_;
  if (samples > decay_samples_) return min_lr_;
  const double decay_ratio = (samples - warmup_samples_) / (decay_samples_ - warmup_samples_);
  const double coefficient = style_ == LrDecayStyle::Linear
                                 ? 1.0 - decay_ratio
                                 : 0.5 * (std::cos(std::numbers::pi * decay_ratio) + 1.0);
  return min_lr_ + coefficient * (max_lr_ - min_lr_);
}

}  // namespace moebench::train
