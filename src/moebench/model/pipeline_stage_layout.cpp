#include "moebench/model/pipeline_stage_layout.h"

#include <numeric>
#include <string>

#include "moebench/core/error.h"

namespace moebench::model {

using std::to_string;

LayerRange pipeline_chunk_layers(const config::ParallelConfig& parallel, int num_layers, int stage,
                                 int model_chunk) {
  const int chunks = parallel.virtual_stages;
  if (stage < 0 || stage >= parallel.pipeline || model_chunk < 0 || model_chunk >= chunks)
    throw Error("pipeline_chunk_layers: stage " + to_string(stage) + ", model chunk " +
                to_string(model_chunk) + " is outside PP=" + to_string(parallel.pipeline) +
                ", VPP=" + to_string(chunks));
  const std::vector<int> stage_layers = parallel.layers_per_stage(num_layers);
  if (std::accumulate(stage_layers.begin(), stage_layers.end(), 0) != num_layers)
    throw Error("num-layers " + to_string(num_layers) + " does not split over PP=" +
                to_string(parallel.pipeline) + " with PP_FIRST=" + to_string(parallel.first_stage_layers) +
                ", PP_LAST=" + to_string(parallel.last_stage_layers));
  for (int s = 0; s < parallel.pipeline; ++s)
    if (stage_layers[s] % chunks != 0)
      throw Error("pipeline stage " + to_string(s) + " holds " + to_string(stage_layers[s]) +
                  " layers, not divisible by VPP=" + to_string(chunks));

  int begin = model_chunk * (num_layers / chunks);
  for (int s = 0; s < stage; ++s) begin += stage_layers[s] / chunks;
  return {begin, begin + stage_layers[stage] / chunks};
}

PipelineStageLayout PipelineStageLayout::whole_model(int num_layers) { return {0, 1, {{0, num_layers}}}; }

PipelineStageLayout PipelineStageLayout::of_stage(const config::ParallelConfig& parallel, int num_layers,
                                                  int stage) {
  PipelineStageLayout layout{stage, parallel.pipeline, {}};
  for (int chunk = 0; chunk < parallel.virtual_stages; ++chunk)
    layout.chunks.push_back(pipeline_chunk_layers(parallel, num_layers, stage, chunk));
  return layout;
}

}  // namespace moebench::model
