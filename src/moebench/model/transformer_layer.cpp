#include "moebench/model/transformer_layer.h"

#include <cmath>

#include "moebench/obs/profiler.h"

namespace moebench::model {
namespace {

std::string layer_prefix(int layer_number) {
  return "decoder.layers." + std::to_string(layer_number);
}

bool is_moe_layer(int layer_number, const config::ModelConfig& config) {
  return config.is_moe() && layer_number < int(config.moe.is_moe_layer.size()) &&
         config.moe.is_moe_layer[layer_number];
}

}  // namespace

TransformerLayer::TransformerLayer(int layer_number, const config::ModelConfig& config,
                                   uint64_t seed, const ModelConventions& conventions,
                                   const dist::ParallelState* parallel_state)
    : input_norm_(layer_prefix(layer_number) + (config.multi_latent_attention
                                                    ? ".input_layernorm.weight"
                                                    : ".self_attention.linear_qkv.layer_norm_weight"),
                  config.hidden_size, config.norm_epsilon),
      pre_mlp_norm_(layer_prefix(layer_number) + (is_moe_layer(layer_number, config)
                                                      ? ".pre_mlp_layernorm.weight"
                                                      : ".mlp.linear_fc1.layer_norm_weight"),
                    config.hidden_size, config.norm_epsilon) {
  const std::string prefix = layer_prefix(layer_number);
  const auto tp = dist::TensorParallelRegions::of(parallel_state, config.sequence_parallel);
  // Under SP the norms see this rank's tokens only.
  input_norm_.weight.grad_partial_over_tp = tp.sequence_parallel();
  pre_mlp_norm_.weight.grad_partial_over_tp = tp.sequence_parallel();
  if (config.multi_latent_attention) {
    mla_.emplace(prefix + ".self_attention", config, seed, tp);
  } else {
    gqa_.emplace(prefix + ".self_attention", config, seed, tp);
  }
  if (is_moe_layer(layer_number, config)) {
    moe_.emplace(prefix + ".mlp", config, seed, conventions, parallel_state);
  } else {
    mlp_.emplace(prefix + ".mlp", config.hidden_size, config.ffn_hidden_size,
                 float(config.init_method_std),
                 float(config.init_method_std / std::sqrt(2.0 * config.num_layers)), seed, tp);
  }
}

Tensor TransformerLayer::forward(const Tensor& x, int64_t batch, int64_t seq, Context& context,
                                 double& aux_loss) {
  // The residual adds happen in the attention's and the dense MLP's last
  // GEMM (one tp rank) or after its tp reduction, and in the MoE's combine.
  const Tensor normed = input_norm_.forward(x, context.input_norm);
  const Tensor hidden = obs::profiled("attention forward", [&] {
    return gqa_ ? gqa_->forward(normed, batch, seq, context.gqa, x)
                : mla_->forward(normed, batch, seq, context.mla, x);
  });
  const Tensor mlp_in = pre_mlp_norm_.forward(hidden, context.pre_mlp_norm);
  return obs::profiled(moe_ ? "moe forward" : "mlp forward", [&] {
    return moe_ ? moe_->forward(mlp_in, batch, seq, context.moe, aux_loss, hidden)
                : mlp_->forward(mlp_in, context.mlp, hidden);
  });
}

Tensor TransformerLayer::backward(const Tensor& dout, const Context& context, double loss_scale) {
  const Tensor dmlp_in = obs::profiled(moe_ ? "moe backward" : "mlp backward", [&] {
    return moe_ ? moe_->backward(dout, context.moe, loss_scale) : mlp_->backward(dout, context.mlp);
  });
  // The residual connections' gradients join in the norms' backward kernels.
  const Tensor dhidden = pre_mlp_norm_.backward(dmlp_in, context.pre_mlp_norm, dout);
  const Tensor dnormed = obs::profiled("attention backward", [&] {
    return gqa_ ? gqa_->backward(dhidden, context.gqa) : mla_->backward(dhidden, context.mla);
  });
  return input_norm_.backward(dnormed, context.input_norm, dhidden);
}

void TransformerLayer::collect(std::vector<Parameter*>& parameters) {
  parameters.push_back(&input_norm_.weight);
  if (gqa_) gqa_->collect(parameters);
  if (mla_) mla_->collect(parameters);
  parameters.push_back(&pre_mlp_norm_.weight);
  if (mlp_) mlp_->collect(parameters);
  if (moe_) moe_->collect(parameters);
}

}  // namespace moebench::model
