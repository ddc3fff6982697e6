#include "moebench/train/memory_estimate.h"

#include <algorithm>
#include <vector>

#include "moebench/train/parameter_count.h"

namespace moebench::train {
namespace {

constexpr double kBf16 = 2, kFp32 = 4;
constexpr double kWorkspaceBytes = 0.5e9;  // cuBLASLt/cuDNN workspaces and allocator rounding

double attention_activation_elements(const config::ModelConfig& m) {
  const double h = m.hidden_size, heads = m.num_attention_heads;
  if (m.multi_latent_attention) {
    const auto& mla = m.mla;
    const double q_latent = mla.q_lora_rank > 0 ? 2.0 * mla.q_lora_rank : 0;
    const double qk = heads * (mla.qk_head_dim + mla.qk_pos_emb_head_dim);
    const double kv_latent = 2.0 * mla.kv_lora_rank + mla.qk_pos_emb_head_dim;
    return 2 * h + q_latent + qk + kv_latent + qk + 2 * heads * mla.v_head_dim;
  }
  const double q = static_cast<double>(m.kv_channels) * m.num_attention_heads;
  const double kv = static_cast<double>(m.kv_channels) * m.num_query_groups;
  return 2 * h + q + 2 * kv + q;  // norm in/out, q, k, v, attention output
}

}  // namespace

RecomputeConfig recompute_config_from_flags(const config::FlagMap& flags) {
  RecomputeConfig r;
  r.full = flags.get_string("--recompute-granularity", "") == "full";
  r.layers = static_cast<int>(flags.get_int("--recompute-num-layers", 1));
  return r;
}

double layer_activation_bytes_per_token(const config::ModelConfig& m, int layer) {
  const double h = m.hidden_size;
  double elements = attention_activation_elements(m);
  double fp32_elements = m.num_attention_heads;  // softmax log-sum-exp
  if (m.moe.is_moe_layer[layer]) {
    const double k = m.moe.topk, f = m.moe.ffn_hidden_size, shared = m.moe.shared_expert_size;
    // norm in/out; per routed copy: input, fc1 out (gate|up), activation, fc2 out; shared expert fc1 and act.
    elements += 2 * h + k * (2 * h + 3 * f) + 3 * shared;
    fp32_elements += 2.0 * m.moe.num_experts;  // router logits and probabilities
  } else {
    elements += 2 * h + 3.0 * m.ffn_hidden_size;
  }
  return elements * kBf16 + fp32_elements * kFp32;
}

MemoryEstimate estimate_memory(const config::ModelConfig& m, const config::ParallelConfig& p,
                               const RecomputeConfig& recompute, const OptimizerPrecision& precision) {
  const std::vector<ParameterCount> stages = parameters_per_stage(m, p);
  const std::vector<int> stage_layers = p.layers_per_stage(m.num_layers);
  const double tokens = static_cast<double>(p.micro_batch) * m.seq_length / p.context;
  // Sequence parallel splits every activation over TP; without it only the attention/MLP interiors are.
  const double activation_split = p.tensor;
  const double optimizer_bytes = precision.state_bytes_per_parameter();

  MemoryEstimate best;
  int first_layer = 0;
  for (size_t stage = 0; stage < stages.size(); ++stage) {
    const ParameterCount& params = stages[stage];
    const double dense = params.dense + params.embedding + params.output;
    MemoryEstimate e;
    e.stage = static_cast<int>(stage);
    e.weights = params.total() * kBf16;
    e.gradients = params.total() * kFp32;
    // fp32 main weights + Adam m + v; sharded over DP (dense) and expert-DP (experts) when distributed.
    e.optimizer_replicated = params.total() * optimizer_bytes;
    e.optimizer_distributed = (dense / p.data_parallel() + params.experts / p.expert_data_parallel()) * optimizer_bytes;
    e.optimizer = p.distributed_optimizer ? e.optimizer_distributed : e.optimizer_replicated;

    double per_microbatch = 0, one_layer_max = 0;
    int moe_layers = 0;
    for (int i = 0; i < stage_layers[stage]; ++i) {
      moe_layers += m.moe.is_moe_layer[first_layer + i];
      double layer = layer_activation_bytes_per_token(m, first_layer + i) * tokens / activation_split;
      one_layer_max = std::max(one_layer_max, layer);
      per_microbatch += recompute.full ? m.hidden_size * kBf16 * tokens / activation_split : layer;
    }
    if (recompute.full) per_microbatch += one_layer_max;  // the layer being recomputed
    if (stage == stages.size() - 1)  // final norm in/out and bf16 logits
      per_microbatch += tokens * (2.0 * m.hidden_size + static_cast<double>(m.padded_vocab_size) / p.tensor) * kBf16;
    e.activations_per_microbatch = per_microbatch;
    // 1F1B keeps (PP - stage) microbatches in flight; interleaving adds (PP-1)/(PP x VPP) of a stage's worth.
    double in_flight = p.pipeline - static_cast<double>(stage);
    if (p.virtual_stages > 1) in_flight *= 1.0 + (p.pipeline - 1.0) / (p.pipeline * p.virtual_stages);
    e.microbatches_in_flight = std::min(in_flight, static_cast<double>(p.num_microbatches()));
    e.activations = e.activations_per_microbatch * e.microbatches_in_flight;
    // Past its backward a microbatch keeps, per MoE layer and routed row (top-k
    // copies of its tokens, split as the activations are), fc2's dout (h) and
    // act (ffn) and fc1's dfc1 (2 ffn) and input (h), until the N-th is added.
    e.kept_wgrad_microbatches = std::min(m.moe.wgrad_microbatches, p.num_microbatches()) - 1;
    const double routed_rows = tokens * m.moe.topk / activation_split;
    e.kept_wgrad_operands = e.kept_wgrad_microbatches * moe_layers * routed_rows *
                            (2.0 * m.hidden_size + 3.0 * m.moe.ffn_hidden_size) * kBf16;
    e.workspace = kWorkspaceBytes;
    if (stage == 0 || e.total() > best.total()) best = e;
    first_layer += stage_layers[stage];
  }
  return best;
}

}  // namespace moebench::train
