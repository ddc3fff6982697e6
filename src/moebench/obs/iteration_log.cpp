#include "moebench/obs/iteration_log.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <ostream>

namespace moebench {
namespace {

using nlohmann::json;

// printf into a std::string, for Megatron's fixed-width fields.
template <typename... Args>
std::string format(const char* pattern, Args... args) {
  char text[160];
  std::snprintf(text, sizeof text, pattern, args...);
  return text;
}

json metrics_record(const IterationRecord& r) {
  json timers = json::object();
  for (const auto& [name, ms] : r.timers_ms) timers[name] = ms;
  json record = {{"type", "train"},
          {"iteration", r.iteration},
          {"train_iters", r.train_iters},
          {"consumed_samples", r.consumed_samples},
          {"global_batch_size", r.global_batch_size},
          {"elapsed_ms", r.elapsed_ms},
          {"tflops_per_gpu", r.tflops_per_gpu},
          {"tokens_per_second", r.tokens_per_second},
          {"learning_rate", r.learning_rate},
          {"lm_loss", r.lm_loss},
          {"load_balancing_loss", r.load_balancing_loss},
          {"grad_norm", r.grad_norm},
          {"skipped", r.skipped},
          {"nan_loss", r.nan_loss},
          {"skipped_iterations", r.skipped_iterations},
          {"nan_iterations", r.nan_iterations},
          {"peak_rss_bytes", r.peak_rss_bytes},
          {"timers_ms", timers}};
  if (r.peak_device_memory_bytes > 0) record["peak_device_memory_bytes"] = r.peak_device_memory_bytes;
  return record;
}

}  // namespace

std::string log_timestamp() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char text[32];
  std::strftime(text, sizeof text, " [%Y-%m-%d %H:%M:%S]", &local);
  return text;
}

IterationLog::IterationLog(const IterationLogOptions& options, std::ostream& out, std::ostream& progress)
    : options_(options), out_(out), progress_(progress) {
  if (!options_.metrics_file.empty()) metrics_.emplace(options_.metrics_file);
  if (!options_.tensorboard_dir.empty()) tensorboard_.emplace(options_.tensorboard_dir);
}

IterationLog::~IterationLog() { clear_progress(); }

void IterationLog::log_iteration(const IterationRecord& record) {
  if (metrics_) metrics_->write(metrics_record(record));
  if (tensorboard_) write_tensorboard(record);

  interval_.iterations += 1;
  interval_.elapsed_ms += record.elapsed_ms;
  interval_.tflops_per_gpu += record.tflops_per_gpu;
  interval_.tokens_per_second += record.tokens_per_second;
  interval_.skipped += record.skipped;
  interval_.nan += record.nan_loss;
  if (!record.skipped && !record.nan_loss) {
    interval_.loss_iterations += 1;
    interval_.lm_loss += record.lm_loss;
    interval_.load_balancing_loss += record.load_balancing_loss;
  }
  total_elapsed_ms_ += record.elapsed_ms;

  const bool last = record.iteration == record.train_iters;
  if (record.iteration % options_.log_interval == 0 || last) {
    clear_progress();
    out_ << interval_line(record) << std::endl;
    interval_ = {};
  }
  if (options_.progress_bar) draw_progress(record);
  if (last) clear_progress();
}

// Megatron's training_log line: times and losses averaged over the interval,
// learning rate and gradient norm of its last iteration, skipped and NaN
// iterations counted within it.
std::string IterationLog::interval_line(const IterationRecord& last) const {
  const double n = double(interval_.iterations);
  const double loss_n = double(std::max<int64_t>(1, interval_.loss_iterations));
  std::string line = log_timestamp();
  line += format(" iteration %8lld/%8lld |", (long long)last.iteration, (long long)last.train_iters);
  line += format(" consumed samples: %12lld |", (long long)last.consumed_samples);
  line += format(" elapsed time per iteration (ms): %.1f |", interval_.elapsed_ms / n);
  line += format(" throughput per GPU (TFLOP/s/GPU): %.1f |", interval_.tflops_per_gpu / n);
  line += format(" tokens per second: %.1f |", interval_.tokens_per_second / n);
  line += format(" learning rate: %.6E |", last.learning_rate);
  line += format(" global batch size: %5lld |", (long long)last.global_batch_size);
  // Megatron prints a loss only when its average is positive (so dense models show no balancing loss).
  if (interval_.lm_loss / loss_n > 0) line += format(" lm loss: %.6E |", interval_.lm_loss / loss_n);
  if (interval_.load_balancing_loss / loss_n > 0)
    line += format(" load_balancing_loss: %.6E |", interval_.load_balancing_loss / loss_n);
  if (!std::isnan(last.grad_norm)) line += format(" grad norm: %.3f |", last.grad_norm);
  line += format(" number of skipped iterations: %3lld |", (long long)interval_.skipped);
  line += format(" number of nan iterations: %3lld |", (long long)interval_.nan);
  line += format(" mem (peak RSS, MB): %.1f |", double(last.peak_rss_bytes) / (1024.0 * 1024.0));
  if (last.peak_device_memory_bytes > 0)
    line += format(" mem (peak GPU allocated, MB): %.1f |", double(last.peak_device_memory_bytes) / (1024.0 * 1024.0));
  return line;
}

// Megatron's TensorBoard tags; times in seconds as its timers write them.
void IterationLog::write_tensorboard(const IterationRecord& r) {
  const int64_t step = r.iteration;
  tensorboard_->add_scalar("learning-rate", float(r.learning_rate), step);
  tensorboard_->add_scalar("batch-size", float(r.global_batch_size), step);
  if (!r.skipped && !r.nan_loss) {
    tensorboard_->add_scalar("lm loss", float(r.lm_loss), step);
    tensorboard_->add_scalar("load_balancing_loss", float(r.load_balancing_loss), step);
  }
  if (!std::isnan(r.grad_norm)) tensorboard_->add_scalar("grad-norm", float(r.grad_norm), step);
  tensorboard_->add_scalar("iteration-time", float(r.elapsed_ms / 1e3), step);
  tensorboard_->add_scalar("throughput", float(r.tflops_per_gpu), step);
  tensorboard_->add_scalar("tokens-per-second", float(r.tokens_per_second), step);
  tensorboard_->add_scalar("mem-peak-rss-bytes", float(r.peak_rss_bytes), step);
  if (r.peak_device_memory_bytes > 0)
    tensorboard_->add_scalar("mem-max-allocated-bytes", float(r.peak_device_memory_bytes), step);
  for (const auto& [name, ms] : r.timers_ms) tensorboard_->add_scalar(name + "-time", float(ms / 1e3), step);
}

void IterationLog::log_validation(const ValidationRecord& record) {
  const double ppl = std::exp(std::min(20.0, record.lm_loss));  // Megatron caps the exponent at 20
  const std::string text = format(" validation loss at iteration %lld | lm loss value: %.6E | lm loss PPL: %.6E | ",
                                  (long long)record.iteration, record.lm_loss, ppl);
  const std::string rule(text.size() + 1, '-');
  clear_progress();
  out_ << rule << "\n" << text << "\n" << rule << std::endl;
  if (metrics_)
    metrics_->write({{"type", "validation"}, {"iteration", record.iteration}, {"lm_loss", record.lm_loss},
                     {"lm_loss_ppl", ppl}});
  if (tensorboard_) {
    tensorboard_->add_scalar("lm loss validation", float(record.lm_loss), record.iteration);
    tensorboard_->add_scalar("lm loss validation ppl", float(ppl), record.iteration);
  }
}

void IterationLog::draw_progress(const IterationRecord& r) {
  constexpr int kWidth = 30;
  const double fraction = r.train_iters > 0 ? double(r.iteration) / double(r.train_iters) : 0.0;
  const int filled = int(fraction * kWidth);
  const double seconds_left = total_elapsed_ms_ / double(r.iteration) * double(r.train_iters - r.iteration) / 1e3;
  progress_ << "\r[" << std::string(size_t(filled), '#') << std::string(size_t(kWidth - filled), '.') << "] "
            << r.iteration << "/" << r.train_iters
            << format(" %3.0f%% | lm loss %.4f | eta %.0f s", fraction * 100, r.lm_loss, seconds_left) << std::flush;
  progress_shown_ = true;
}

// Erases the bar so that a printed line does not land in the middle of it.
void IterationLog::clear_progress() {
  if (!progress_shown_) return;
  progress_ << "\r\033[K" << std::flush;
  progress_shown_ = false;
}

}  // namespace moebench
