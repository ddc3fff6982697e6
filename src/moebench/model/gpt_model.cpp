#include "moebench/model/gpt_model.h"

#include <cmath>
#include <optional>

#include "moebench/core/error.h"
#include "moebench/model/embedding.h"
#include "moebench/model/linear.h"
#include "moebench/model/rmsnorm.h"
#include "moebench/model/transformer_layer.h"
#include "moebench/ops/cross_entropy.h"

namespace moebench::model {

// What one forward keeps for its backward.
struct GPTModelContext {
  int64_t batch = 0, seq = 0;
  Tensor input_ids, labels, loss_mask;
  std::vector<TransformerLayer::Context> layers;
  RMSNorm::Context final_norm;
  Tensor final_hidden;  // [N, h] after the final norm
  Tensor logits;        // [N, padded vocab]
};

struct GPTModel::Impl {
  config::ModelConfig config;
  ModelConventions conventions;
  VocabEmbedding embedding;
  std::vector<TransformerLayer> layers;
  RMSNorm final_layernorm;
  Linear output_layer;
  std::optional<GPTModelContext> context;

  Impl(const config::ModelConfig& config, uint64_t seed, const ModelConventions& conventions)
      : config(config),
        conventions(conventions),
        embedding(config.padded_vocab_size, config.hidden_size, float(config.init_method_std),
                  seed),
        final_layernorm("decoder.final_layernorm.weight", config.hidden_size,
                        config.norm_epsilon),
        output_layer("output_layer", config.hidden_size, config.padded_vocab_size,
                     float(config.init_method_std), seed) {
    layers.reserve(config.num_layers);
    for (int l = 0; l < config.num_layers; ++l) layers.emplace_back(l, config, seed, conventions);
  }
};

GPTModel::GPTModel(const config::ModelConfig& config, uint64_t seed)
    : GPTModel(config, seed, ModelConventions{}) {}

GPTModel::GPTModel(const config::ModelConfig& config, uint64_t seed,
                   const ModelConventions& conventions)
    : impl_(std::make_unique<Impl>(config, seed, conventions)) {}

GPTModel::~GPTModel() = default;
GPTModel::GPTModel(GPTModel&&) noexcept = default;
GPTModel& GPTModel::operator=(GPTModel&&) noexcept = default;

ForwardOutput GPTModel::forward(const Tensor& input_ids, const Tensor& labels,
                                const Tensor& loss_mask, bool keep_logits) {
  if (input_ids.dim() != 2 || input_ids.dtype() != DType::I64)
    throw Error("GPTModel::forward needs input_ids int64 [B, S], got " + input_ids.describe());
  Impl& m = *impl_;
  GPTModelContext& context = m.context.emplace();
  context.batch = input_ids.size(0);
  context.seq = input_ids.size(1);
  context.input_ids = input_ids.contiguous();
  context.labels = labels.defined() ? labels.contiguous() : labels;
  context.loss_mask = loss_mask.defined() ? loss_mask.contiguous() : loss_mask;
  context.layers.resize(m.layers.size());

  ForwardOutput output;
  Tensor hidden = m.embedding.forward(context.input_ids);
  for (size_t l = 0; l < m.layers.size(); ++l)
    hidden = m.layers[l].forward(hidden, context.batch, context.seq, context.layers[l],
                                 output.aux_loss);
  context.final_hidden = m.final_layernorm.forward(hidden, context.final_norm);
  context.logits = m.output_layer.forward(context.final_hidden);
  const int64_t tokens = context.batch * context.seq, vocab = m.config.padded_vocab_size;
  if (labels.defined()) {
    std::vector<float> losses(tokens);
    // Megatron's cross-entropy softmaxes over the whole padded vocabulary.
    ops::cpu::cross_entropy_forward(losses.data(), context.logits.data<float>(),
                                    context.labels.data<int64_t>(), tokens, vocab, vocab);
    output.lm_loss = ops::cpu::masked_mean_forward(
        losses.data(), loss_mask.defined() ? context.loss_mask.data<float>() : nullptr, tokens);
  }
  if (keep_logits) output.logits = context.logits.view({context.batch, context.seq, vocab});
  return output;
}

void GPTModel::backward(double loss_scale) {
  Impl& m = *impl_;
  if (!m.context || !m.context->labels.defined())
    throw Error("GPTModel::backward needs a forward with labels first");
  GPTModelContext& context = *m.context;
  const int64_t tokens = context.batch * context.seq, vocab = m.config.padded_vocab_size;
  const float* mask = context.loss_mask.defined() ? context.loss_mask.data<float>() : nullptr;
  std::vector<float> dlosses(tokens);
  ops::cpu::masked_mean_backward(dlosses.data(), float(loss_scale), mask, tokens);
  Tensor dlogits = Tensor::empty({tokens, vocab}, DType::F32);
  ops::cpu::cross_entropy_backward(dlogits.data<float>(), dlosses.data(),
                                   context.logits.data<float>(), context.labels.data<int64_t>(),
                                   tokens, vocab, vocab);
  Tensor dhidden = m.output_layer.backward(dlogits, context.final_hidden);
  dhidden = m.final_layernorm.backward(dhidden, context.final_norm);
  for (size_t l = m.layers.size(); l-- > 0;)
    dhidden = m.layers[l].backward(dhidden, context.layers[l], loss_scale);
  m.embedding.backward(dhidden, context.input_ids);
  m.context.reset();
}

std::vector<Parameter*> GPTModel::parameters() {
  Impl& m = *impl_;
  std::vector<Parameter*> parameters{&m.embedding.word_embeddings};
  for (auto& layer : m.layers) layer.collect(parameters);
  parameters.push_back(&m.final_layernorm.weight);
  m.output_layer.collect(parameters);
  return parameters;
}

Parameter& GPTModel::parameter(const std::string& name) {
  for (Parameter* parameter : parameters())
    if (parameter->name == name) return *parameter;
  throw Error("GPTModel has no parameter named '" + name + "'");
}

std::vector<Buffer> GPTModel::buffers() {
  std::vector<Buffer> buffers;
  if (!impl_->config.moe.expert_bias) return buffers;
  for (auto& layer : impl_->layers)
    if (MoELayer* moe = layer.moe())
      buffers.push_back({moe->router.expert_bias_name(), moe->router.expert_bias});
  return buffers;
}

void GPTModel::zero_grad() {
  for (Parameter* parameter : parameters()) parameter->grad.fill_(0.0);
}

void GPTModel::update_expert_bias(dist::Communicator& token_count_group) {
  for (auto& layer : impl_->layers)
    if (MoELayer* moe = layer.moe()) moe->router.update_expert_bias(token_count_group);
}

const config::ModelConfig& GPTModel::config() const { return impl_->config; }

}  // namespace moebench::model
