#include "moebench/train/pipeline_logits.h"

#include "moebench/dist/pipeline_p2p.h"
#include "moebench/model/tensor_parallel_gather.h"
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
  const config::ModelConfig& config = model.config();
  // Under sequence parallelism each tp rank passes on its share of the tokens (GPTModel's [B, S / TP, h]).
  dist::Communicator& tensor_parallel = parallel_state.group(GroupKind::kTensor);
  const int64_t sequence_shards = config.sequence_parallel ? tensor_parallel.size() : 1;
  dist::PipelineP2P p2p(parallel_state.group(GroupKind::kPipeline),
                        {input_ids.size(0), input_ids.size(1) / sequence_shards, int64_t(config.hidden_size)},
                        DType::F32);
  run_pipeline_forward_only(int(model.pipeline_layout().chunks.size()), 1, stage, p2p);
  model::ForwardOutput result = stage.result();
  if (result.logits.defined()) {
    // The output layer is vocabulary-parallel: each tp rank computed its columns of the logits.
    const model::TensorParallelSplit vocabulary = {.partition_dim = 2,
                                                   .rank = tensor_parallel.rank(),
                                                   .size = tensor_parallel.size()};
    result.logits = model::gather_tensor_parallel(result.logits, vocabulary, tensor_parallel);
  }
  return result;
}

}  // namespace moebench::train
