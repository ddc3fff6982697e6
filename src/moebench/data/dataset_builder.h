#pragma once
// What Megatron's BlendedMegatronDatasetBuilder does for pretrain_gpt.py: from
// --data-path (prefixes, optionally weighted), --split, --seq-length, --seed
// and --data-cache-path, the train and validation datasets of a run, each a
// GptDataset for one prefix or a BlendedDataset over several, sized for the
// samples the run will draw.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "moebench/data/gpt_dataset.h"
#include "moebench/data/gpt_microbatch_source.h"

namespace moebench::data {

// Samples drawn per split, as Megatron's train_valid_test_num_samples:
// train = train_samples when the run is sample-based, else train_iters x GBS;
// valid = (train_iters / eval_interval + 1) x eval_iters x GBS, the evaluations
// at every eval-interval and the one at the end.
struct SplitSampleCounts {
  int64_t train = 0;
  int64_t valid = 0;
};
SplitSampleCounts megatron_sample_counts(int64_t train_iters, int64_t train_samples, int64_t eval_interval,
                                         int64_t eval_iters, int64_t global_batch);

// Megatron's --split when --data-path is given without one.
inline constexpr const char* kDefaultSplit = "969, 30, 1";

struct TrainingDataConfig {
  std::vector<std::string> data_path;  // the words of --data-path
  std::string split = kDefaultSplit;
  GptDatasetConfig dataset;  // --seq-length, --seed, --data-cache-path
  SplitSampleCounts samples;
};

struct TrainingDatasets {
  std::shared_ptr<const GptMicrobatchSource> train;
  // Null when --split gives validation no share or no validation samples are drawn.
  std::shared_ptr<const GptMicrobatchSource> validation;
};

// Several prefixes without weights are weighted by the tokens of their split,
// so each corpus is drawn in proportion to its size. (Megatron concatenates
// them instead, one corpus after another; a blend by size draws the same
// mixture at every point of the run.) Throws an Error for a missing corpus, a
// split without training data or a split too small for one sample.
TrainingDatasets build_training_datasets(const TrainingDataConfig& config);

}  // namespace moebench::data
