#pragma once
// What a training run reports, and where it goes: a Megatron-style line on
// stdout every log-interval iterations, one JSON object per iteration in
// metrics.jsonl, TensorBoard scalars, and a progress bar on stderr.
#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "moebench/obs/metrics_jsonl.h"
#include "moebench/obs/tensorboard_writer.h"

namespace moebench {

struct IterationRecord {
  int64_t iteration = 0;  // counting from 1
  int64_t train_iters = 0;
  int64_t consumed_samples = 0;  // after this iteration
  int64_t global_batch_size = 0;
  double elapsed_ms = 0;
  double tflops_per_gpu = 0;     // model FLOPs / time / world size
  double tokens_per_second = 0;  // global batch x seq-length / time
  double learning_rate = 0;      // Megatron logs the scheduler's value after its step
  double lm_loss = 0;            // mean over the microbatches
  double load_balancing_loss = 0;
  double grad_norm = 0;          // before clipping; NaN when not computed
  bool skipped = false;          // this iteration made no update
  bool nan_loss = false;         // this iteration's loss was NaN or Inf
  int64_t skipped_iterations = 0;  // run totals
  int64_t nan_iterations = 0;
  int64_t peak_rss_bytes = 0;
  int64_t peak_device_memory_bytes = 0;  // this iteration's peak of the CUDA caching allocator; 0 on the CPU
  std::vector<std::pair<std::string, double>> timers_ms;
};

struct ValidationRecord {
  int64_t iteration = 0;  // the training iteration after which it was evaluated
  double lm_loss = 0;     // mean over eval-iters x microbatches
};

struct IterationLogOptions {
  int log_interval = 1;
  std::filesystem::path metrics_file = {};     // empty: no metrics.jsonl
  std::filesystem::path tensorboard_dir = {};  // empty: no TensorBoard events
  bool progress_bar = false;              // the caller passes isatty(stderr)
};

class IterationLog {
 public:
  // Lines go to `out`, the progress bar to `progress` (std::cerr in a run).
  IterationLog(const IterationLogOptions& options, std::ostream& out, std::ostream& progress);
  ~IterationLog();

  void log_iteration(const IterationRecord& record);
  void log_validation(const ValidationRecord& record);

 private:
  // Sums over the iterations since the last printed line, as Megatron averages them.
  struct Interval {
    int64_t iterations = 0;
    int64_t loss_iterations = 0;  // neither skipped nor NaN
    double elapsed_ms = 0;
    double tflops_per_gpu = 0;
    double tokens_per_second = 0;
    double lm_loss = 0;
    double load_balancing_loss = 0;
    int64_t skipped = 0;
    int64_t nan = 0;
  };

  std::string interval_line(const IterationRecord& last) const;
  void write_tensorboard(const IterationRecord& record);
  void draw_progress(const IterationRecord& record);
  void clear_progress();

  IterationLogOptions options_;
  std::ostream& out_;
  std::ostream& progress_;
  std::optional<MetricsJsonlWriter> metrics_;
  std::optional<TensorBoardWriter> tensorboard_;
  Interval interval_;
  double total_elapsed_ms_ = 0;
  bool progress_shown_ = false;
};

// " [2026-11-25 10:00:00]": Megatron's timestamp prefix, local time.
std::string log_timestamp();

}  // namespace moebench
