#pragma once
// What the trainer needs of a model: GPTModel's training interface, behind a
// virtual base so the training loop is one compiled function for any model
// with that interface (GPTModel in runs, small stand-ins in tests).
#include <vector>

#include "moebench/data/microbatch.h"
#include "moebench/dist/communicator.h"
#include "moebench/model/gpt_model.h"
#include "moebench/model/parameter.h"

namespace moebench::train {

class TrainableModel {
 public:
  virtual ~TrainableModel() = default;
  // Loss of one microbatch; keeps what backward needs.
  virtual model::ForwardOutput forward(const data::Microbatch& batch) = 0;
  // Accumulates d(lm_loss + aux_loss) x loss_scale into the gradients.
  virtual void backward(double loss_scale) = 0;
  // Adds the gradients a model defers past its backwards (GPTModel's routed
  // experts under --moe-wgrad-microbatches > 1); the trainer calls it after a
  // step's last backward, before the gradients are reduced. None by default.
  virtual void flush_weight_gradients() {}
  virtual std::vector<model::Parameter*> parameters() = 0;
  virtual void zero_grad() = 0;
  // After an applied optimizer step; the routed-token counts are summed over
  // `token_count_group` (tp_dp_cp) first, so every rank moves its biases alike.
  virtual void update_expert_bias(dist::Communicator& token_count_group) = 0;
  // Untrained state that checkpoints keep (router expert biases); none by default.
  virtual std::vector<model::Buffer> buffers() { return {}; }

  // Pipeline parallelism: one (microbatch, model chunk) pass of this
  // pipeline rank's part of the model, as GPTModel::forward_chunk,
  // backward_chunk and discard_chunk. By default the model has no stages: Error.
  virtual model::ForwardOutput forward_chunk(int microbatch, int chunk, const model::ChunkInput& input);
  virtual Tensor backward_chunk(int microbatch, int chunk, const Tensor& output_grad, double loss_scale);
  virtual void discard_chunk(int microbatch, int chunk);
};

// Adapts any model with GPTModel's member functions, held by reference.
template <typename Model>
class TrainableModelRef final : public TrainableModel {
 public:
  explicit TrainableModelRef(Model& model) : model_(model) {}
  model::ForwardOutput forward(const data::Microbatch& batch) override {
    return model_.forward(batch.tokens, batch.labels, batch.loss_mask);
  }
  void backward(double loss_scale) override { model_.backward(loss_scale); }
  void flush_weight_gradients() override {
    if constexpr (requires { model_.flush_weight_gradients(); }) model_.flush_weight_gradients();
  }
  std::vector<model::Parameter*> parameters() override { return model_.parameters(); }
  void zero_grad() override { model_.zero_grad(); }
  void update_expert_bias(dist::Communicator& token_count_group) override {
    model_.update_expert_bias(token_count_group);
  }
  std::vector<model::Buffer> buffers() override {
    if constexpr (requires { model_.buffers(); }) return model_.buffers();
    return {};
  }
  model::ForwardOutput forward_chunk(int microbatch, int chunk, const model::ChunkInput& input) override {
    if constexpr (requires { model_.forward_chunk(microbatch, chunk, input); })
      return model_.forward_chunk(microbatch, chunk, input);
    return TrainableModel::forward_chunk(microbatch, chunk, input);
  }
  Tensor backward_chunk(int microbatch, int chunk, const Tensor& output_grad, double loss_scale) override {
    if constexpr (requires { model_.backward_chunk(microbatch, chunk, output_grad, loss_scale); })
      return model_.backward_chunk(microbatch, chunk, output_grad, loss_scale);
    return TrainableModel::backward_chunk(microbatch, chunk, output_grad, loss_scale);
  }
  void discard_chunk(int microbatch, int chunk) override {
    if constexpr (requires { model_.discard_chunk(microbatch, chunk); })
      model_.discard_chunk(microbatch, chunk);
    else
      TrainableModel::discard_chunk(microbatch, chunk);
  }

 private:
  Model& model_;
};

}  // namespace moebench::train
