#include "moebench/train/training_pipeline_stage.h"

#include <utility>

namespace moebench::train {

TrainingPipelineStage::TrainingPipelineStage(TrainableModel& model, std::function<data::Microbatch(int)> microbatch,
                                             int stage, int stages, int model_chunks, double loss_scale, Mode mode)
    : model_(model),
      microbatch_(std::move(microbatch)),
      stage_(stage),
      stages_(stages),
      model_chunks_(model_chunks),
      loss_scale_(loss_scale),
      mode_(mode) {}

Tensor TrainingPipelineStage::forward(int microbatch, int model_chunk, const Tensor& input) {
  model::ChunkInput chunk_input;
  chunk_input.hidden = input;
  // Only the ends of the pipeline read data, as in Megatron.
  if (is_first_virtual_stage(model_chunk) || is_last_virtual_stage(model_chunk)) {
    const data::Microbatch batch = microbatch_(microbatch);
    if (is_first_virtual_stage(model_chunk)) chunk_input.input_ids = batch.tokens;
    if (is_last_virtual_stage(model_chunk)) {
      chunk_input.labels = batch.labels;
      chunk_input.loss_mask = batch.loss_mask;
    }
  }
  const model::ForwardOutput output = model_.forward_chunk(microbatch, model_chunk, chunk_input);
  if (mode_ == Mode::kForwardOnly) model_.discard_chunk(microbatch, model_chunk);
  lm_loss_sum_ += output.lm_loss;
  aux_loss_sum_ += output.aux_loss;
  return output.hidden;
}

Tensor TrainingPipelineStage::backward(int microbatch, int model_chunk, const Tensor& output_grad) {
  return model_.backward_chunk(microbatch, model_chunk, output_grad, loss_scale_);
}

}  // namespace moebench::train
