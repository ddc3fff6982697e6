#include "moebench/train/trainable_model.h"

#include "moebench/core/error.h"

namespace moebench::train {
namespace {

[[noreturn]] void no_pipeline_stages() {
  throw Error("this model has no pipeline stages (forward_chunk / backward_chunk); train it with PP=1");
}

}  // namespace

model::ForwardOutput TrainableModel::forward_chunk(int, int, const model::ChunkInput&) { no_pipeline_stages(); }

Tensor TrainableModel::backward_chunk(int, int, const Tensor&, double) { no_pipeline_stages(); }

void TrainableModel::discard_chunk(int, int) { no_pipeline_stages(); }

}  // namespace moebench::train
