#pragma once
// `moebench convert hf-to-native`: a Hugging Face hub checkpoint into a
// native release checkpoint laid out for a TP/PP/EP mapping, streaming:
// the hub files are memory-mapped, each rank file is written piece by piece
// (one piece of one parameter in memory at a time, assembled from the hub
// tensors that hf_tensor_mappings names), and a rank file already complete
// in the staging directory from an interrupted run is kept, so a restart
// resumes. FP8 hub weights (F8_E4M3 with 128x128 weight_scale_inv blocks, as
// DeepSeek-V3 ships) are dequantised to bf16; other weights keep their dtype.
// The hub config.json is checked against the tensors before anything is
// written; the checkpoint appears only when complete.
#include <cstdint>
#include <filesystem>
#include <functional>

#include "moebench/ckpt/megatron_sharding.h"

namespace moebench::ckpt {

struct ConversionProgress {
  int64_t pieces_done = 0;
  int64_t pieces_total = 0;
  int64_t bytes_written = 0;
  int ranks_skipped = 0;  // complete rank files kept from an interrupted run
};

struct HfToNativeOptions {
  std::filesystem::path hub_directory;
  std::filesystem::path output_root;
  ParallelMapping mapping;
  std::function<void(const ConversionProgress&)> on_progress;  // may be empty
};

ConversionProgress convert_hf_to_native(const HfToNativeOptions& options);

}  // namespace moebench::ckpt
