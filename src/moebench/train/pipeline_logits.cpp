#include "moebench/train/pipeline_logits.h"

#include "moebench/dist/pipeline_p2p.h"
#include "moebench/train/pipeline_runner.h"

namespace moebench::train {
namespace {

// The model's chunks for run_pipeline_forward_only: one microbatch, whose
// last virtual stage keeps the logits.
class LogitsStage final : public PipelineStageModel {
 public:
  LogitsStage(model::GPTModel& model, const Tensor& input_ids, const Tensor& labels)
      : model_(model), input_ids_(input_ids), labels_(labels) {}

  Tensor forward(int microbatch, int model_chunk, const Tensor& input) override {
    const model::PipelineStageLayout& layout = model_.pipeline_layout();
    const bool last = layout.is_last_virtual_stage(model_chunk);
    model::ChunkInput chunk_input;
    chunk_input.hidden = input;
    if (layout.is_first_virtual_stage(model_chunk)) chunk_input.input_ids = input_ids_;
    if (last) chunk_input.labels = labels_;
    const model::ForwardOutput output = model_.forward_chunk(microbatch, model_chunk, chunk_input, last);
    if (last) result_ = output;
    model_.discard_chunk(microbatch, model_chunk);
    return output.hidden;
  }

  Tensor backward(int, int, const Tensor&) override { return Tensor(); }

  const model::ForwardOutput& result() const { return result_; }

 private:
  model::GPTModel& model_;
  Tensor input_ids_, labels_;
  model::ForwardOutput result_;
};

}  // namespace

model::ForwardOutput pipeline_logits(model::GPTModel& model, const dist::ParallelState& parallel_state,
                                     const Tensor& input_ids, const Tensor& labels) {
  LogitsStage stage(model, input_ids, labels);
  const int64_t hidden_size = model.config().hidden_size;
  dist::PipelineP2P p2p(parallel_state.group(GroupKind::kPipeline), {input_ids.size(0), input_ids.size(1), hidden_size},
                        DType::F32);
  run_pipeline_forward_only(int(model.pipeline_layout().chunks.size()), 1, stage, p2p);
  return stage.result();
}

}  // namespace moebench::train
