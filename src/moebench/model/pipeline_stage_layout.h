#pragma once
// Which layers one pipeline rank builds, as Megatron-Core assigns them: the
// layer ranges of its model chunks (VPP of them, interleaved schedule), and
// whether it holds the embedding (first virtual stage) and the final norm,
// output layer and loss (last virtual stage). Pure arithmetic.
#include <vector>

#include "moebench/config/parallel_config.h"

namespace moebench::model {

// The layers of one model chunk, [begin, end) in the model's numbering.
struct LayerRange {
  int begin;
  int end;
  int size() const { return end - begin; }
  friend bool operator==(const LayerRange&, const LayerRange&) = default;
};

// The layers that model chunk `model_chunk` of pipeline stage `stage` builds,
// by Megatron's offset rule (get_transformer_layer_offset): the model is cut
// into VPP consecutive passes of num_layers / VPP layers; in each pass, stage
// s holds layers_per_stage(s) / VPP layers right after those of stages 0..s-1
// (PP_FIRST / VPP on the first stage, PP_LAST / VPP on the last when set).
// So chunk c of stage s starts at c * num_layers / VPP + sum over s' < s of
// layers_per_stage(s') / VPP. Megatron's own formula assumes PP_FIRST is set
// whenever PP_LAST is under VPP; without it, it would give stage 1 stage 0's
// offset, where this rule places stage 1 after stage 0. Throws Error when a
// stage's layer count is not divisible by VPP or the stages do not add up to
// num_layers.
LayerRange pipeline_chunk_layers(const config::ParallelConfig& parallel, int num_layers, int stage,
                                 int model_chunk);

struct PipelineStageLayout {
  int stage = 0;                   // this rank's pipeline stage
  int stages = 1;                  // PP
  std::vector<LayerRange> chunks;  // the layers of model chunk c (VPP entries)

  // Virtual stage 0 (chunk 0 of stage 0) embeds the tokens.
  bool has_embedding() const { return stage == 0; }
  // The last virtual stage (last chunk of the last stage) computes the loss.
  bool has_output_layer() const { return stage == stages - 1; }
  bool is_first_virtual_stage(int chunk) const { return has_embedding() && chunk == 0; }
  bool is_last_virtual_stage(int chunk) const { return has_output_layer() && chunk == int(chunks.size()) - 1; }

  // One rank, one chunk holding every layer.
  static PipelineStageLayout whole_model(int num_layers);
  // Stage `stage` of `parallel`'s PP x VPP pipeline (throws as pipeline_chunk_layers).
  static PipelineStageLayout of_stage(const config::ParallelConfig& parallel, int num_layers, int stage);
};

}  // namespace moebench::model
