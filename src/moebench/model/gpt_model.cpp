#include "moebench/model/gpt_model.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>

#include "moebench/core/device_transfer.h"
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

// What one forward of one model chunk keeps for its backward.
struct GPTModelContext {
  int64_t batch = 0, seq = 0;
  Tensor input_ids, labels, loss_mask;  // input_ids on the first virtual stage, the rest on the last
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
  PipelineStageLayout layout;
  std::optional<VocabEmbedding> embedding;            // first stage
  std::vector<std::vector<TransformerLayer>> chunks;  // the layers of each model chunk
  std::optional<RMSNorm> final_layernorm;             // last stage
  std::optional<ColumnParallelLinear> output_layer;   // last stage, over the vocabulary
  VocabParallelCrossEntropy cross_entropy;
  // Passes in flight, by (microbatch, model chunk).
  std::map<std::pair<int, int>, GPTModelContext> contexts;

  Impl(const config::ModelConfig& config, uint64_t seed, const ModelConventions& conventions,
       const dist::ParallelState* parallel_state, const PipelineStageLayout& layout)
      : config(config),
        conventions(conventions),
        tensor_parallel(dist::TensorParallelRegions::of(parallel_state, config.sequence_parallel)),
        layout(layout),
        cross_entropy(tensor_parallel) {
    if (layout.has_embedding())
      embedding.emplace(config.padded_vocab_size, config.hidden_size, float(config.init_method_std), seed,
                        tensor_parallel);
    for (const LayerRange& range : layout.chunks) {
      std::vector<TransformerLayer>& layers = chunks.emplace_back();
      layers.reserve(size_t(range.size()));
      for (int l = range.begin; l < range.end; ++l) layers.emplace_back(l, config, seed, conventions, parallel_state);
    }
    if (layout.has_output_layer()) {
      final_layernorm.emplace("decoder.final_layernorm.weight", config.hidden_size, config.norm_epsilon);
      final_layernorm->weight.grad_partial_over_tp = tensor_parallel.sequence_parallel();
      output_layer.emplace("output_layer", config.hidden_size, config.padded_vocab_size,
                           float(config.init_method_std), seed, tensor_parallel);
    }
  }

  std::vector<Parameter*> parameters() {
    std::vector<Parameter*> parameters;
    if (embedding) parameters.push_back(&embedding->word_embeddings);
    for (auto& layers : chunks)
      for (auto& layer : layers) layer.collect(parameters);
    if (final_layernorm) parameters.push_back(&final_layernorm->weight);
    if (output_layer) output_layer->collect(parameters);
    return parameters;
  }

  std::vector<TransformerLayer*> all_layers() {
    std::vector<TransformerLayer*> all;
    for (auto& layers : chunks)
      for (auto& layer : layers) all.push_back(&layer);
    return all;
  }

  // The hidden states that cross a stage boundary, of a pass on [B, S]
  // tokens: [B, S, h], or under sequence parallelism this tp rank's B x S / TP
  // token rows shaped [B, S / TP, h] (Megatron's p2p shape [S / TP, B, h]).
  int64_t sequence_shards() const { return tensor_parallel.sequence_parallel() ? tensor_parallel.size() : 1; }
  std::vector<int64_t> boundary_shape(const GPTModelContext& context) const {
    return {context.batch, context.seq / sequence_shards(), config.hidden_size};
  }
  int64_t boundary_rows(const GPTModelContext& context) const {
    return context.batch * context.seq / sequence_shards();
  }

  void place(const ModelPlacement& where);
  ForwardOutput forward(int microbatch, int chunk, const ChunkInput& input, bool keep_logits);
  Tensor backward(int microbatch, int chunk, const Tensor& output_grad, double loss_scale);
  GPTModelContext& context_of(int microbatch, int chunk, const char* caller);
  void check_chunk(int chunk, const char* caller) const;
  void check_whole_model(const char* caller) const;
};

namespace {

// Lays `group` out back to back in one allocation on `device`: fp32 main
// weights (copied from the CPU values, each straight into its place), the
// compute copy in `dtype`, fp32 zero gradients; each parameter's tensors
// become views of these.
void place_group(const std::vector<Parameter*>& group, Device device, DType dtype) {
  int64_t total = 0;
  for (const Parameter* p : group) total += p->value.numel();
  const Tensor main = Tensor::empty({total}, DType::F32, device);
  int64_t offset = 0;
  for (const Parameter* p : group) {
    copy_into(main.slice(0, offset, offset + p->value.numel()).view(p->value.shape()), p->value);
    offset += p->value.numel();
  }
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
  for (TransformerLayer* layer : all_layers()) {
    if (MoELayer* moe = layer->moe()) {
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
    : impl_(std::make_unique<Impl>(config, seed, conventions, nullptr,
                                   PipelineStageLayout::whole_model(config.num_layers))) {}

GPTModel::GPTModel(const config::ModelConfig& config, uint64_t seed, const ModelConventions& conventions,
                   const ModelPlacement& placement)
    : GPTModel(config, seed, conventions) {
  impl_->place(placement);
}

GPTModel::GPTModel(const config::ModelConfig& config, uint64_t seed, const ModelConventions& conventions,
                   const ModelPlacement& placement, const dist::ParallelState& parallel_state)
    : GPTModel(config, seed, conventions, placement, parallel_state,
               PipelineStageLayout::whole_model(config.num_layers)) {}

GPTModel::GPTModel(const config::ModelConfig& config, uint64_t seed, const ModelConventions& conventions,
                   const ModelPlacement& placement, const dist::ParallelState& parallel_state,
                   const PipelineStageLayout& layout) {
  const int expert_parallel = parallel_state.group(GroupKind::kExpert).size();
  if (expert_parallel > 1 && !placement.device.is_cpu())
    throw Error("expert parallelism (EP=" + std::to_string(expert_parallel) +
                ") is not supported on the GPU yet; train with --device cpu or EP=1");
  const int tensor_parallel = parallel_state.group(GroupKind::kTensor).size();
  if (tensor_parallel > 1 && !placement.device.is_cpu())
    throw Error("tensor parallelism (TP=" + std::to_string(tensor_parallel) +
                ") is not supported on the GPU yet; train with --device cpu or TP=1");
  const dist::Communicator& pipeline = parallel_state.group(GroupKind::kPipeline);
  if (pipeline.size() > 1 && !placement.device.is_cpu())
    throw Error("pipeline parallelism (PP=" + std::to_string(pipeline.size()) +
                ") is not supported on the GPU yet; train with --device cpu or PP=1");
  if (layout.stages != pipeline.size() || layout.stage != pipeline.rank())
    throw Error("GPTModel: a layout for stage " + std::to_string(layout.stage) + " of PP=" +
                std::to_string(layout.stages) + " on stage " + std::to_string(pipeline.rank()) + " of a pp group of " +
                std::to_string(pipeline.size()) + "; build it with PipelineStageLayout::of_stage for this rank");
  impl_ = std::make_unique<Impl>(config, seed, conventions, &parallel_state, layout);
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

void GPTModel::Impl::check_chunk(int chunk, const char* caller) const {
  if (chunk < 0 || chunk >= int(layout.chunks.size()))
    throw Error(std::string("GPTModel::") + caller + ": model chunk " + std::to_string(chunk) +
                " does not exist; this pipeline rank holds " + std::to_string(layout.chunks.size()));
}

void GPTModel::Impl::check_whole_model(const char* caller) const {
  if (layout.stages != 1 || layout.chunks.size() != 1)
    throw Error(std::string("GPTModel::") + caller + " runs the whole model, but this one is stage " +
                std::to_string(layout.stage) + " of PP=" + std::to_string(layout.stages) + " with " +
                std::to_string(layout.chunks.size()) + " model chunk(s); use the *_chunk functions");
}

GPTModelContext& GPTModel::Impl::context_of(int microbatch, int chunk, const char* caller) {
  const auto found = contexts.find({microbatch, chunk});
  if (found == contexts.end())
    throw Error(std::string("GPTModel::") + caller + ": no forward of microbatch " + std::to_string(microbatch) +
                " through model chunk " + std::to_string(chunk) + " is waiting for its backward; run it first");
  return found->second;
}

ForwardOutput GPTModel::Impl::forward(int microbatch, int chunk, const ChunkInput& input, bool keep_logits) {
  check_chunk(chunk, "forward");
  const bool first = layout.is_first_virtual_stage(chunk), last = layout.is_last_virtual_stage(chunk);
  const Tensor& first_input = first ? input.input_ids : input.hidden;
  if (first && (input.input_ids.dim() != 2 || input.input_ids.dtype() != DType::I64))
    throw Error("GPTModel::forward needs input_ids int64 [B, S], got " + input.input_ids.describe());
  if (!first && (!input.hidden.defined() || input.hidden.dim() != 3))
    throw Error("GPTModel::forward_chunk of model chunk " + std::to_string(chunk) +
                " needs the previous virtual stage's hidden states [B, S, h] ([B, S / TP, h] under sequence "
                "parallelism), got " +
                (input.hidden.defined() ? input.hidden.describe() : std::string("none")));
  // Inputs follow the model's device; any parameter tells where that is.
  const Tensor& on_device = parameters().front()->value;
  GPTModelContext& context = contexts.insert_or_assign({microbatch, chunk}, GPTModelContext{}).first->second;
  context.batch = first_input.size(0);
  context.seq = first_input.size(1) * (first ? 1 : sequence_shards());
  const auto to_model = [&](const Tensor& t) { return t.defined() ? ops::to_device_of(t.contiguous(), on_device) : t; };
  std::vector<TransformerLayer>& layers = chunks[size_t(chunk)];
  context.layers.resize(layers.size());

  ForwardOutput output;
  Tensor hidden;
  if (first) {
    context.input_ids = to_model(input.input_ids);
    hidden = embedding->forward(context.input_ids);
  } else {
    hidden = to_model(input.hidden).view({boundary_rows(context), config.hidden_size});
  }
  for (size_t l = 0; l < layers.size(); ++l) {
    const obs::ProfileRange range("layer " + std::to_string(layout.chunks[size_t(chunk)].begin + int(l)) + " forward");
    hidden = layers[l].forward(hidden, context.batch, context.seq, context.layers[l], output.aux_loss);
  }
  // GPU routers leave their aux + z losses on the device.
  for (const TransformerLayer::Context& layer : context.layers)
    if (layer.moe.router.aux_loss.defined())
      output.aux_loss += ops::to_cpu(layer.moe.router.aux_loss).data<float>()[0];
  if (!last) {
    output.hidden = hidden.view(boundary_shape(context));
    return output;
  }

  context.labels = to_model(input.labels);
  context.loss_mask = to_model(input.loss_mask);
  context.final_hidden = final_layernorm->forward(hidden, context.final_norm);
  context.logits = output_layer->forward(context.final_hidden);
  const int64_t tokens = context.batch * context.seq, vocab = config.padded_vocab_size;
  if (context.labels.defined()) {
    context.losses = Tensor::empty({tokens}, ops::statistic_dtype(context.logits), on_device.device());
    if (on_device.device().is_cuda()) context.logsumexp = Tensor::empty({tokens}, DType::F32, on_device.device());
    // Megatron's cross-entropy softmaxes over the whole padded vocabulary.
    cross_entropy.forward(context.losses, context.logsumexp, context.logits, context.labels, vocab);
    Tensor mean = ops::empty_like(context.losses, {1});
    ops::masked_mean_forward(mean, context.losses, context.loss_mask);
    const Tensor host_mean = ops::to_cpu(mean);
    output.lm_loss = host_mean.dtype() == DType::F64 ? host_mean.data<double>()[0] : host_mean.data<float>()[0];
  }
  if (keep_logits) output.logits = context.logits.view({context.batch, context.seq, context.logits.size(1)});
  context.logits_returned = keep_logits;
  return output;
}

Tensor GPTModel::Impl::backward(int microbatch, int chunk, const Tensor& output_grad, double loss_scale) {
  check_chunk(chunk, "backward");
  GPTModelContext& context = context_of(microbatch, chunk, "backward");
  Tensor dhidden;
  if (layout.is_last_virtual_stage(chunk)) {
    if (!context.labels.defined()) throw Error("GPTModel::backward needs a forward with labels first");
    Tensor dlosses = ops::empty_like(context.losses);
    ops::masked_mean_backward(dlosses, loss_scale, context.loss_mask);
    // On a GPU the gradient replaces the logits in place unless the caller holds them.
    Tensor dlogits = context.logits.device().is_cuda() && !context.logits_returned ? context.logits
                                                                                   : ops::empty_like(context.logits);
    cross_entropy.backward(dlogits, dlosses, context.logits, context.labels, context.logsumexp,
                           config.padded_vocab_size);
    dhidden = output_layer->backward(dlogits, context.final_hidden);
    dhidden = final_layernorm->backward(dhidden, context.final_norm);
  } else {
    const std::vector<int64_t> shape = boundary_shape(context);
    if (!output_grad.defined() || output_grad.numel() != boundary_rows(context) * config.hidden_size)
      throw Error("GPTModel::backward_chunk of model chunk " + std::to_string(chunk) +
                  " needs the gradient of its output, shaped [" + std::to_string(shape[0]) + ", " +
                  std::to_string(shape[1]) + ", " + std::to_string(shape[2]) + "], got " +
                  (output_grad.defined() ? output_grad.describe() : std::string("none")));
    dhidden = output_grad.contiguous().view({boundary_rows(context), config.hidden_size});
  }
  std::vector<TransformerLayer>& layers = chunks[size_t(chunk)];
  for (size_t l = layers.size(); l-- > 0;) {
    const obs::ProfileRange range("layer " + std::to_string(layout.chunks[size_t(chunk)].begin + int(l)) + " backward");
    dhidden = layers[l].backward(dhidden, context.layers[l], loss_scale);
  }
  Tensor input_grad;
  if (layout.is_first_virtual_stage(chunk))
    embedding->backward(dhidden, context.input_ids);
  else
    input_grad = dhidden.view(boundary_shape(context));
  contexts.erase({microbatch, chunk});
  return input_grad;
}

ForwardOutput GPTModel::forward(const Tensor& input_ids, const Tensor& labels,
                                const Tensor& loss_mask, bool keep_logits) {
  impl_->check_whole_model("forward");
  return impl_->forward(0, 0, {Tensor(), input_ids, labels, loss_mask}, keep_logits);
}

void GPTModel::backward(double loss_scale) {
  impl_->check_whole_model("backward");
  if (!impl_->contexts.contains({0, 0})) throw Error("GPTModel::backward needs a forward with labels first");
  impl_->backward(0, 0, Tensor(), loss_scale);
}

ForwardOutput GPTModel::forward_chunk(int microbatch, int chunk, const ChunkInput& input, bool keep_logits) {
  return impl_->forward(microbatch, chunk, input, keep_logits);
}

Tensor GPTModel::backward_chunk(int microbatch, int chunk, const Tensor& output_grad, double loss_scale) {
  return impl_->backward(microbatch, chunk, output_grad, loss_scale);
}

void GPTModel::discard_chunk(int microbatch, int chunk) { impl_->contexts.erase({microbatch, chunk}); }

const PipelineStageLayout& GPTModel::pipeline_layout() const { return impl_->layout; }

std::vector<Parameter*> GPTModel::parameters() { return impl_->parameters(); }

Parameter& GPTModel::parameter(const std::string& name) {
  for (Parameter* parameter : parameters())
    if (parameter->name == name) return *parameter;
  throw Error("GPTModel has no parameter named '" + name + "'");
}

std::vector<Buffer> GPTModel::buffers() {
  std::vector<Buffer> buffers;
  if (!impl_->config.moe.expert_bias) return buffers;
  for (TransformerLayer* layer : impl_->all_layers())
    if (MoELayer* moe = layer->moe()) buffers.push_back({moe->router.expert_bias_name(), moe->router.expert_bias});
  return buffers;
}

void GPTModel::flush_weight_gradients() {
  for (TransformerLayer* layer : impl_->all_layers())
    if (MoELayer* moe = layer->moe()) moe->experts.flush_weight_gradients();
}

void GPTModel::zero_grad() {
  // The routed experts zero their own gradients (possibly later, by the
  // first flush overwriting them: GroupedExperts::zero_grad).
  std::unordered_set<const Parameter*> experts;
  for (TransformerLayer* layer : impl_->all_layers()) {
    if (MoELayer* moe = layer->moe()) {
      moe->experts.zero_grad();
      for (const std::vector<Parameter*>& group : moe->experts.stacked_parameter_groups())
        experts.insert(group.begin(), group.end());
    }
  }
  for (Parameter* parameter : parameters())
    if (!experts.contains(parameter)) ops::zero_(parameter->grad);
}

void GPTModel::update_expert_bias(dist::Communicator& token_count_group) {
  for (TransformerLayer* layer : impl_->all_layers())
    if (MoELayer* moe = layer->moe()) moe->router.update_expert_bias(token_count_group);
}

const config::ModelConfig& GPTModel::config() const { return impl_->config; }

const ModelPlacement& GPTModel::placement() const { return impl_->placement; }

}  // namespace moebench::model
