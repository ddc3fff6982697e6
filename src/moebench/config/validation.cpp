#include "moebench/config/validation.h"

#include <string>

#include "moebench/core/error.h"

namespace moebench::config {
namespace {

using std::to_string;

void require(bool rule_holds, const std::string& message) {
  if (!rule_holds) throw Error(message);
}

void validate_sizes(const ParallelConfig& p) {
  for (auto [name, value] : {std::pair{"TP", p.tensor}, {"PP", p.pipeline}, {"EP", p.expert},
                             {"expert-TP", p.expert_tensor}, {"CP", p.context}, {"VPP", p.virtual_stages},
                             {"MBS", p.micro_batch}, {"GBS", p.global_batch}, {"world size", p.world_size}})
    require(value >= 1, std::string(name) + "=" + to_string(value) + " must be at least 1");
}

void validate_mapping(const ModelConfig& m, const ParallelConfig& p) {
  require(p.world_size % p.model_parallel() == 0,
          "world size " + to_string(p.world_size) + " (NNODES x GPUS_PER_NODE) is not divisible by TP=" +
              to_string(p.tensor) + " x PP=" + to_string(p.pipeline) + " x CP=" + to_string(p.context) + " = " +
              to_string(p.model_parallel()));
  // Expert parallel folding: the expert grid reuses the ranks of one pipeline stage.
  const int ranks_per_stage = p.world_size / p.pipeline;
  require(ranks_per_stage % (p.expert * p.expert_tensor) == 0,
          "EP=" + to_string(p.expert) + " x expert-TP=" + to_string(p.expert_tensor) +
              " does not divide the " + to_string(ranks_per_stage) +
              " ranks of a pipeline stage (DP x CP x TP = " + to_string(p.data_parallel()) + " x " +
              to_string(p.context) + " x " + to_string(p.tensor) + ")");
  if (m.is_moe())
    require(m.moe.num_experts % p.expert == 0, "num-experts " + to_string(m.moe.num_experts) +
                                                   " is not divisible by EP=" + to_string(p.expert));
  else
    require(p.expert == 1, "EP=" + to_string(p.expert) + " needs a MoE model, but num-experts is 0");
  const int dp = p.data_parallel();
  require(p.global_batch % (p.micro_batch * dp) == 0,
          "GBS=" + to_string(p.global_batch) + " is not divisible by MBS x DP = " + to_string(p.micro_batch) +
              " x " + to_string(dp));
}

void validate_heads(const ModelConfig& m, const ParallelConfig& p) {
  require(m.num_attention_heads % p.tensor == 0, "num-attention-heads " + to_string(m.num_attention_heads) +
                                                     " is not divisible by TP=" + to_string(p.tensor));
  require(m.num_attention_heads % m.num_query_groups == 0,
          "num-attention-heads " + to_string(m.num_attention_heads) + " is not divisible by num-query-groups " +
              to_string(m.num_query_groups));
  if (!m.multi_latent_attention)
    require(m.num_query_groups % p.tensor == 0, "num-query-groups " + to_string(m.num_query_groups) +
                                                    " is not divisible by TP=" + to_string(p.tensor));
}

// Megatron's tensor-parallel rules for the CPU engine's TP: every split
// dimension divides, experts are not tensor-split, and MoE needs SP.
void validate_tensor_parallel(const ModelConfig& m, const ParallelConfig& p) {
  require(p.expert_tensor == 1,
          "--expert-tensor-parallel-size " + to_string(p.expert_tensor) +
              ": experts are never tensor-split in moebench; set --expert-tensor-parallel-size 1 (every zoo "
              "config does; without the flag it defaults to TP, as in Megatron)");
  if (p.tensor == 1) return;
  require(m.padded_vocab_size % p.tensor == 0, "padded vocabulary " + to_string(m.padded_vocab_size) +
                                                   " is not divisible by TP=" + to_string(p.tensor) +
                                                   "; pad it with --make-vocab-size-divisible-by");
  require(m.ffn_hidden_size % p.tensor == 0, "ffn-hidden-size " + to_string(m.ffn_hidden_size) +
                                                 " is not divisible by TP=" + to_string(p.tensor));
  if (m.is_moe()) {
    require(m.moe.shared_expert_size % p.tensor == 0,
            "moe-shared-expert-intermediate-size " + to_string(m.moe.shared_expert_size) +
                " is not divisible by TP=" + to_string(p.tensor));
    require(p.sequence_parallel, "MoE with TP=" + to_string(p.tensor) +
                                     " needs sequence parallelism, as in Megatron; add --sequence-parallel");
  }
}

void validate_pipeline(const ModelConfig& m, const ParallelConfig& p) {
  const int layers = m.num_layers;
  const bool uneven = p.first_stage_layers > 0 || p.last_stage_layers > 0;
  if (!uneven) {
    require(layers % p.pipeline == 0,
            "num-layers " + to_string(layers) + " is not divisible by PP=" + to_string(p.pipeline) +
                "; set PP_FIRST and PP_LAST for uneven first and last stages");
  } else {
    require(p.pipeline >= 2, "PP_FIRST/PP_LAST need PP >= 2, got PP=" + to_string(p.pipeline));
    const int edge = p.first_stage_layers + p.last_stage_layers;
    const int middle_stages = p.pipeline - (p.first_stage_layers > 0) - (p.last_stage_layers > 0);
    const int middle_layers = layers - edge;
    const std::string setup = "num-layers " + to_string(layers) + " with PP=" + to_string(p.pipeline) +
                              ", PP_FIRST=" + to_string(p.first_stage_layers) +
                              ", PP_LAST=" + to_string(p.last_stage_layers);
    if (middle_stages == 0)
      require(middle_layers == 0, setup + ": the two stages must hold all layers");
    else
      require(middle_layers > 0 && middle_layers % middle_stages == 0,
              setup + ": the remaining " + to_string(middle_layers) + " layers do not split evenly over the " +
                  to_string(middle_stages) + " middle stages");
  }
  if (p.virtual_stages > 1) {
    require(p.pipeline > 1, "VPP=" + to_string(p.virtual_stages) + " needs PP > 1");
    const auto stage_layers = p.layers_per_stage(layers);
    for (size_t stage = 0; stage < stage_layers.size(); ++stage)
      require(stage_layers[stage] % p.virtual_stages == 0,
              "pipeline stage " + to_string(stage) + " holds " + to_string(stage_layers[stage]) +
                  " layers, not divisible by VPP=" + to_string(p.virtual_stages));
    // Megatron's interleaved schedule walks the microbatches in groups of PP.
    require(p.num_microbatches() % p.pipeline == 0,
            "VPP=" + to_string(p.virtual_stages) + " (the interleaved schedule) needs the number of microbatches, "
            "GBS / (MBS x DP) = " + to_string(p.global_batch) + " / (" + to_string(p.micro_batch) + " x " +
                to_string(p.data_parallel()) + ") = " + to_string(p.num_microbatches()) +
                ", to be a multiple of PP=" + to_string(p.pipeline) + "; change GBS, MBS or the data-parallel size");
  }
}

void validate_sequence(const ModelConfig& m, const ParallelConfig& p) {
  if (p.sequence_parallel)
    require(m.seq_length % p.tensor == 0, "seq-length " + to_string(m.seq_length) +
                                              " is not divisible by TP=" + to_string(p.tensor) +
                                              " (sequence parallel splits the sequence over TP ranks)");
  if (p.context > 1)
    require(m.seq_length % (2 * p.context) == 0,
            "seq-length " + to_string(m.seq_length) + " is not divisible by 2 x CP = " + to_string(2 * p.context) +
                " (context parallel splits the sequence into 2 x CP chunks)");
}

void validate_router(const ModelConfig& m) {
  if (!m.is_moe()) return;
  const MoeConfig& moe = m.moe;
  require(moe.topk >= 1 && moe.topk <= moe.num_experts, "moe-router-topk " + to_string(moe.topk) +
                                                            " must be between 1 and num-experts " +
                                                            to_string(moe.num_experts));
  if (moe.num_groups > 0) {
    require(moe.num_experts % moe.num_groups == 0, "num-experts " + to_string(moe.num_experts) +
                                                       " is not divisible by moe-router-num-groups " +
                                                       to_string(moe.num_groups));
    require(moe.group_topk >= 1 && moe.group_topk <= moe.num_groups,
            "moe-router-group-topk " + to_string(moe.group_topk) + " must be between 1 and moe-router-num-groups " +
                to_string(moe.num_groups));
    require(moe.topk <= moe.group_topk * (moe.num_experts / moe.num_groups),
            "moe-router-topk " + to_string(moe.topk) + " exceeds the experts of the " + to_string(moe.group_topk) +
                " selected groups");
  }
}

}  // namespace

void validate_wgrad_microbatches(const MoeConfig& moe) {
  const std::string flag = "--moe-wgrad-microbatches " + to_string(moe.wgrad_microbatches);
  require(moe.wgrad_microbatches >= 1, flag + " must be at least 1 (1 computes the routed experts' weight "
                                              "gradients in every micro-batch's backward, as Megatron does)");
  // The per-expert loop computes its weight gradients inside its backward.
  require(moe.wgrad_microbatches == 1 || moe.grouped_gemm,
          flag + " batches the weight gradients of the grouped experts only; add --moe-grouped-gemm, or set "
                 "--moe-wgrad-microbatches 1");
}

void validate(const ModelConfig& model, const ParallelConfig& parallel) {
  validate_sizes(parallel);
  validate_mapping(model, parallel);
  validate_heads(model, parallel);
  validate_tensor_parallel(model, parallel);
  validate_pipeline(model, parallel);
  validate_sequence(model, parallel);
  validate_router(model);
  if (model.is_moe()) validate_wgrad_microbatches(model.moe);
}

}  // namespace moebench::config
