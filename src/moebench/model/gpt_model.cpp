#include "moebench/model/gpt_model.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <optional>

#include "moebench/core/error.h"
#include "moebench/model/embedding.h"
#include "moebench/model/rmsnorm.h"
#include "moebench/model/tensor_parallel_linear.h"
#include "moebench/model/transformer_layer.h"
#include "moebench/model/vocab_parallel_cross_entropy.h"
#include "moebench/obs/profiler.h"
#include "moebench/ops/cross_entropy.h"
#include "moebench/ops/elementwise.h"

namespace moebench::model {

// What one forward keeps for its backward.
struct GPTModelContext {
  int64_t batch = 0, seq = 0;
  Tensor input_ids, labels, loss_mask;
  std::vector<TransformerLayer::Context> layers;
  RMSNorm::Context final_norm;
  Tensor final_hidden;  // [N, h] after the final norm (this rank's token rows under SP)
  Tensor logits;        // [N, padded vocab / TP]
  Tensor logsumexp;     // f32 [N] (GPU or TP > 1: saved by the cross-entropy for its backward)
  Tensor losses;        // [N] per-token losses (their dtype is the dlosses')
  bool logits_returned = false;  // the caller holds the logits: the backward must not overwrite them
};

struct GPTModel::Impl {
  config::ModelConfig config;
  ModelConventions conventions;
  ModelPlacement placement;
  dist::TensorParallelRegions tensor_parallel;
  VocabEmbedding embedding;
  std::vector<TransformerLayer> layers;
  RMSNorm final_layernorm;
  ColumnParallelLinear output_layer;  // over the vocabulary
  VocabParallelCrossEntropy cross_entropy;
  std::optional<GPTModelContext> context;

  Impl(const config::ModelConfig& config, uint64_t seed, const ModelConventions& conventions,
       const dist::ParallelState* parallel_state)
      : config(config),
        conventions(conventions),
        tensor_parallel(dist::TensorParallelRegions::of(parallel_state, config.sequence_parallel)),
        embedding(config.padded_vocab_size, config.hidden_size, float(config.init_method_std),
                  seed, tensor_parallel),
        final_layernorm("decoder.final_layernorm.weight", config.hidden_size,
                        config.norm_epsilon),
        output_layer("output_layer", config.hidden_size, config.padded_vocab_size,
                     float(config.init_method_std), seed, tensor_parallel),
        cross_entropy(tensor_parallel) {
    final_layernorm.weight.grad_partial_over_tp = tensor_parallel.sequence_parallel();
    layers.reserve(config.num_layers);
    for (int l = 0; l < config.num_layers; ++l) layers.emplace_back(l, config, seed, conventions, parallel_state);
  }

  std::vector<Parameter*> parameters() {
    std::vector<Parameter*> parameters{&embedding.word_embeddings};
    for (auto& layer : layers) layer.collect(parameters);
    parameters.push_back(&final_layernorm.weight);
    output_layer.collect(parameters);
    return parameters;
  }

  void place(const ModelPlacement& where);
};

namespace {

// Lays `group` out back to back in one allocation on `device`: fp32 main
// weights (copied from the CPU values), the compute copy in `dtype`, fp32
// zero gradients; each parameter's tensors become views of these.
void place_group(const std::vector<Parameter*>& group, Device device, DType dtype) {
  int64_t total = 0;
  for (const Parameter* p : group) total += p->value.numel();
  Tensor staging = Tensor::empty({total}, DType::F32);
  int64_t offset = 0;
  for (const Parameter* p : group) {
    staging.slice(0, offset, offset + p->value.numel()).view(p->value.shape()).copy_from(p->value);
    offset += p->value.numel();
  }
  Tensor on_device = Tensor::empty({0}, dtype, device);
  const Tensor main = ops::to_device_of(staging, on_device);
  const Tensor value = ops::cast(main, dtype);
  Tensor grad = Tensor::empty({total}, DType::F32, device);
  ops::zero_(grad);
  offset = 0;
  for (Parameter* p : group) {
    const int64_t n = p->value.numel();
    const std::vector<int64_t> shape = p->value.shape();
    p->main = main.slice(0, offset, offset + n).view(shape);
    p->value = value.slice(0, offset, offset + n).view(shape);
    p->grad = grad.slice(0, offset, offset + n).view(shape);
    offset += n;
  }
}

}  // namespace

void GPTModel::Impl::place(const ModelPlacement& where) {
  placement = where;
  if (where.device.is_cpu()) {
    if (where.compute_dtype != DType::F32)
      throw Error("ModelPlacement: the CPU engine computes in f32, got compute dtype " +
                  std::string(name(where.compute_dtype)));
    return;
  }
  if (where.compute_dtype != DType::BF16)
    throw Error("ModelPlacement: a CUDA model computes in bf16 (Megatron's mixed precision), got " +
                std::string(name(where.compute_dtype)));
  // Expert weights first, each MoE layer's fc1 and fc2 as one [E, N, K] block.
  std::vector<Parameter*> placed;
  for (auto& layer : layers) {
    if (MoELayer* moe = layer.moe()) {
      for (const auto& group : moe->experts.stacked_parameter_groups()) {
        place_group(group, where.device, where.compute_dtype);
        placed.insert(placed.end(), group.begin(), group.end());
      }
    }
  }
  for (Parameter* p : parameters()) {
    if (std::find(placed.begin(), placed.end(), p) != placed.end()) continue;
    place_group({p}, where.device, where.compute_dtype);
  }
}

GPTModel::GPTModel(const config::ModelConfig& config, uint64_t seed)
    : GPTModel(config, seed, ModelConventions{}) {}

GPTModel::GPTModel(const config::ModelConfig& config, uint64_t seed,
                   const ModelConventions& conventions)
    : impl_(std::make_unique<Impl>(config, seed, conventions, nullptr)) {}

GPTModel::GPTModel(const config::ModelConfig& config, uint64_t seed, const ModelConventions& conventions,
                   const ModelPlacement& placement)
    : impl_(std::make_unique<Impl>(config, seed, conventions, nullptr)) {
  impl_->place(placement);
}

GPTModel::GPTModel(const config::ModelConfig& config, uint64_t seed, const ModelConventions& conventions,
                   const ModelPlacement& placement, const dist::ParallelState& parallel_state) {
  const int expert_parallel = parallel_state.group(GroupKind::kExpert).size();
  if (expert_parallel > 1 && !placement.device.is_cpu())
    throw Error("expert parallelism (EP=" + std::to_string(expert_parallel) +
                ") is not supported on the GPU yet; train with --device cpu or EP=1");
  const int tensor_parallel = parallel_state.group(GroupKind::kTensor).size();
  if (tensor_parallel > 1 && !placement.device.is_cpu())
    throw Error("tensor parallelism (TP=" + std::to_string(tensor_parallel) +
                ") is not supported on the GPU yet; train with --device cpu or TP=1");
  impl_ = std::make_unique<Impl>(config, seed, conventions, &parallel_state);
  impl_->place(placement);
}

void GPTModel::place(const ModelPlacement& placement) {
  if (!impl_->placement.device.is_cpu())
    throw Error("GPTModel::place: the model is already on " + impl_->placement.device.str() +
                "; build a new one to place it elsewhere");
  impl_->place(placement);
}

GPTModel::~GPTModel() = default;
GPTModel::GPTModel(GPTModel&&) noexcept = default;
GPTModel& GPTModel::operator=(GPTModel&&) noexcept = default;

ForwardOutput GPTModel::forward(const Tensor& input_ids, const Tensor& labels,
                                const Tensor& loss_mask, bool keep_logits) {
  if (input_ids.dim() != 2 || input_ids.dtype() != DType::I64)
    throw Error("GPTModel::forward needs input_ids int64 [B, S], got " + input_ids.describe());
  Impl& m = *impl_;
  const Tensor& table = m.embedding.word_embeddings.value;
  GPTModelContext& context = m.context.emplace();
  context.batch = input_ids.size(0);
  context.seq = input_ids.size(1);
  context.input_ids = ops::to_device_of(input_ids.contiguous(), table);
  context.labels = labels.defined() ? ops::to_device_of(labels.contiguous(), table) : labels;
  context.loss_mask = loss_mask.defined() ? ops::to_device_of(loss_mask.contiguous(), table) : loss_mask;
  context.layers.resize(m.layers.size());

  ForwardOutput output;
  Tensor hidden = m.embedding.forward(context.input_ids);
  for (size_t l = 0; l < m.layers.size(); ++l) {
    const obs::ProfileRange range("layer " + std::to_string(l) + " forward");
    hidden = m.layers[l].forward(hidden, context.batch, context.seq, context.layers[l],
                                 output.aux_loss);
  }
  context.final_hidden = m.final_layernorm.forward(hidden, context.final_norm);
  context.logits = m.output_layer.forward(context.final_hidden);
  const int64_t tokens = context.batch * context.seq, vocab = m.config.padded_vocab_size;
  if (labels.defined()) {
    context.losses = Tensor::empty({tokens}, ops::statistic_dtype(context.logits), table.device());
    if (table.device().is_cuda()) context.logsumexp = Tensor::empty({tokens}, DType::F32, table.device());
    // Megatron's cross-entropy softmaxes over the whole padded vocabulary.
    m.cross_entropy.forward(context.losses, context.logsumexp, context.logits, context.labels, vocab);
    Tensor mean = ops::empty_like(context.losses, {1});
    ops::masked_mean_forward(mean, context.losses, context.loss_mask);
    const Tensor host_mean = ops::to_cpu(mean);
    output.lm_loss = host_mean.dtype() == DType::F64 ? host_mean.data<double>()[0] : host_mean.data<float>()[0];
  }
  // GPU routers leave their aux + z losses on the device.
  for (const TransformerLayer::Context& layer : context.layers)
    if (layer.moe.router.aux_loss.defined())
      output.aux_loss += ops::to_cpu(layer.moe.router.aux_loss).data<float>()[0];
  if (keep_logits) output.logits = context.logits.view({context.batch, context.seq, context.logits.size(1)});
  context.logits_returned = keep_logits;
  return output;
}

void GPTModel::backward(double loss_scale) {
  Impl& m = *impl_;
  if (!m.context || !m.context->labels.defined())
    throw Error("GPTModel::backward needs a forward with labels first");
  GPTModelContext& context = *m.context;
  Tensor dlosses = ops::empty_like(context.losses);
  ops::masked_mean_backward(dlosses, loss_scale, context.loss_mask);
  // On a GPU the gradient replaces the logits in place unless the caller holds them.
  Tensor dlogits = context.logits.device().is_cuda() && !context.logits_returned ? context.logits
                                                                                 : ops::empty_like(context.logits);
  m.cross_entropy.backward(dlogits, dlosses, context.logits, context.labels, context.logsumexp,
                           m.config.padded_vocab_size);
  Tensor dhidden = m.output_layer.backward(dlogits, context.final_hidden);
  dhidden = m.final_layernorm.backward(dhidden, context.final_norm);
  for (size_t l = m.layers.size(); l-- > 0;) {
    const obs::ProfileRange range("layer " + std::to_string(l) + " backward");
    dhidden = m.layers[l].backward(dhidden, context.layers[l], loss_scale);
  }
  m.embedding.backward(dhidden, context.input_ids);
  m.context.reset();
}

std::vector<Parameter*> GPTModel::parameters() { return impl_->parameters(); }

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
  for (Parameter* parameter : parameters()) ops::zero_(parameter->grad);
}

void GPTModel::update_expert_bias(dist::Communicator& token_count_group) {
  for (auto& layer : impl_->layers)
    if (MoELayer* moe = layer.moe()) moe->router.update_expert_bias(token_count_group);
}

const config::ModelConfig& GPTModel::config() const { return impl_->config; }

const ModelPlacement& GPTModel::placement() const { return impl_->placement; }

}  // namespace moebench::model
