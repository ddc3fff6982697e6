#include "moebench/train/train_config.h"

#include <charconv>

#include "moebench/core/error.h"

namespace moebench::train {
namespace {

LrDecayStyle parse_decay_style(const std::string& text) {
  if (text == "constant") return LrDecayStyle::Constant;
  if (text == "linear") return LrDecayStyle::Linear;
  if (text == "cosine") return LrDecayStyle::Cosine;
  throw Error("--lr-decay-style " + text + " is not supported; use constant, linear or cosine");
}

void require(bool rule_holds, const std::string& message) {
  if (!rule_holds) throw Error(message);
}

void read_length(const config::FlagMap& flags, long long global_batch, TrainConfig& t) {
  const bool by_iters = flags.has("--train-iters");
  const bool by_samples = flags.has("--train-samples");
  require(by_iters != by_samples, by_iters ? "give only one of --train-iters and --train-samples"
                                           : "give the training length: --train-iters or --train-samples");
  require(global_batch > 0, "the global batch size must be positive to count training samples");
  if (by_iters) {
    t.train_iters = flags.get_int("--train-iters", 0);
    require(t.train_iters > 0, "--train-iters must be positive, got " + std::to_string(t.train_iters));
    require(!flags.has("--lr-decay-samples") && !flags.has("--lr-warmup-samples"),
            "--lr-decay-samples and --lr-warmup-samples go with --train-samples; with --train-iters use "
            "--lr-decay-iters and --lr-warmup-iters");
  } else {
    t.train_samples = flags.get_int("--train-samples", 0);
    // Megatron rounds down: a partial last batch is not run.
    t.train_iters = t.train_samples / global_batch;
    require(t.train_iters > 0, "--train-samples " + std::to_string(t.train_samples) +
                                   " is less than one global batch of " + std::to_string(global_batch));
    require(!flags.has("--lr-decay-iters") && !flags.has("--lr-warmup-iters"),
            "--lr-decay-iters and --lr-warmup-iters go with --train-iters; with --train-samples use "
            "--lr-decay-samples and --lr-warmup-samples");
  }
}

void read_schedule(const config::FlagMap& flags, TrainConfig& t) {
  require(flags.has("--lr"), "--lr is not set: give the peak learning rate, e.g. --lr 1e-4");
  t.lr = flags.get_float("--lr", 0.0);
  t.min_lr = flags.get_float("--min-lr", t.min_lr);
  require(t.lr > 0 && t.min_lr >= 0 && t.min_lr <= t.lr,
          "need 0 <= --min-lr <= --lr with --lr > 0, got --lr " + std::to_string(t.lr) + " --min-lr " +
              std::to_string(t.min_lr));
  t.lr_decay_style = parse_decay_style(flags.get_string("--lr-decay-style", "linear"));
  t.lr_warmup_iters = flags.get_int("--lr-warmup-iters", 0);
  t.lr_warmup_samples = flags.get_int("--lr-warmup-samples", 0);
  t.lr_warmup_fraction = flags.get_float("--lr-warmup-fraction", -1.0);
  t.lr_warmup_init = flags.get_float("--lr-warmup-init", 0.0);
  t.lr_decay_iters = flags.get_int("--lr-decay-iters", 0);
  t.lr_decay_samples = flags.get_int("--lr-decay-samples", 0);
  if (flags.has("--lr-warmup-fraction")) {
    require(t.lr_warmup_iters == 0 && t.lr_warmup_samples == 0,
            "give only one of --lr-warmup-fraction and --lr-warmup-iters/--lr-warmup-samples");
    require(t.lr_warmup_fraction >= 0 && t.lr_warmup_fraction <= 1,
            "--lr-warmup-fraction must lie in [0, 1], got " + std::to_string(t.lr_warmup_fraction));
  }
}

void read_profiling(const config::FlagMap& flags, TrainConfig& t) {
  t.profile = flags.get_bool("--profile");
  t.profile_step_start = flags.get_int("--profile-step-start", t.profile_step_start);
  t.profile_step_end = flags.get_int("--profile-step-end", t.profile_step_end);
  require(t.profile_step_start <= t.profile_step_end,
          "--profile-step-end must not come before --profile-step-start, got " + std::to_string(t.profile_step_start) +
              " and " + std::to_string(t.profile_step_end));
  if (flags.has("--profile-ranks")) {
    t.profile_ranks.clear();
    for (const std::string& rank : flags.get_strings("--profile-ranks")) {
      int value = -1;
      const auto [end, error] = std::from_chars(rank.data(), rank.data() + rank.size(), value);
      require(error == std::errc() && end == rank.data() + rank.size() && value >= 0,
              "--profile-ranks takes rank numbers, got " + rank);
      t.profile_ranks.push_back(value);
    }
  }
  t.profile_trace = flags.get_string("--profile-trace", "");
}

}  // namespace

TrainConfig train_config_from_flags(const config::FlagMap& flags, long long global_batch) {
  TrainConfig t;
  read_length(flags, global_batch, t);
  read_schedule(flags, t);
  t.weight_decay = flags.get_float("--weight-decay", t.weight_decay);
  t.adam_beta1 = flags.get_float("--adam-beta1", t.adam_beta1);
  t.adam_beta2 = flags.get_float("--adam-beta2", t.adam_beta2);
  t.adam_eps = flags.get_float("--adam-eps", t.adam_eps);
  t.clip_grad = flags.get_float("--clip-grad", t.clip_grad);
  const std::string optimizer = flags.get_string("--optimizer", "adam");
  require(optimizer == "adam", "--optimizer " + optimizer + " is not supported; moebench trains with adam");
  t.optimizer_precision = optimizer_precision_from_flags(flags);
  t.ddp_bucket_size = flags.get_int("--ddp-bucket-size", 0);
  require(t.ddp_bucket_size >= 0, "--ddp-bucket-size must be positive, got " + std::to_string(t.ddp_bucket_size));

  t.seed = flags.get_int("--seed", t.seed);
  t.log_interval = static_cast<int>(flags.get_int("--log-interval", t.log_interval));
  require(t.log_interval > 0, "--log-interval must be positive, got " + std::to_string(t.log_interval));
  t.eval_interval = static_cast<int>(flags.get_int("--eval-interval", t.eval_interval));
  t.eval_iters = static_cast<int>(flags.get_int("--eval-iters", t.eval_iters));
  t.exit_duration_in_mins = static_cast<double>(flags.get_int("--exit-duration-in-mins", 0));

  t.save = flags.get_string("--save", "");
  t.save_interval = flags.get_int("--save-interval", 0);
  require(t.save_interval >= 0, "--save-interval must be positive, got " + std::to_string(t.save_interval));
  t.save_optim = !flags.get_bool("--no-save-optim");
  t.save_rng = !flags.get_bool("--no-save-rng");
  t.load = flags.get_string("--load", "");
  t.finetune = flags.get_bool("--finetune");
  t.load_optim = !flags.get_bool("--no-load-optim");
  t.load_rng = !flags.get_bool("--no-load-rng");

  t.output_dir = flags.get_string("--output-dir", "");
  t.tensorboard_dir = flags.get_string("--tensorboard-dir", "");
  t.check_for_nan = !flags.get_bool("--no-check-for-nan-in-loss-and-grad");
  require(!(flags.get_bool("--check-for-nan-in-loss-and-grad") && !t.check_for_nan),
          "give only one of --check-for-nan-in-loss-and-grad and --no-check-for-nan-in-loss-and-grad");
  read_profiling(flags, t);
  t.mock_data = flags.get_bool("--mock-data");
  t.has_data_path = flags.has("--data-path");
  return t;
}

const char* lr_decay_style_name(LrDecayStyle style) {
  switch (style) {
    case LrDecayStyle::Constant: return "constant";
    case LrDecayStyle::Linear: return "linear";
    case LrDecayStyle::Cosine: return "cosine";
  }
  return "unknown";
}

}  // namespace moebench::train
