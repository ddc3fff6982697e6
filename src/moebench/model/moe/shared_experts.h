#pragma once
// Megatron-Core's SharedExpertMLP: a SwiGLU MLP every token passes through
// (DeepSeek: n_shared_experts x moe_intermediate_size wide), optionally gated
// per token by sigmoid(inp . gate_weight) as Qwen2-MoE's shared_expert_gate.
//
// Parameters under `prefix` (decoder.layers.N.mlp.shared_experts):
//   linear_fc1.weight [2*shared, h]   linear_fc2.weight [h, shared]
//   gate_weight       [1, h]          (--moe-shared-expert-gate)
// Tensor-parallel like the dense MLP; the gate weight is replicated.
#include <optional>
#include <string>
#include <vector>

#include "moebench/config/model_config.h"
#include "moebench/model/mlp.h"

namespace moebench::model {

class SharedExperts {
 public:
  struct Context {
    MLP::Context mlp;
    Tensor mlp_out;  // [N, h] before gating (gated only)
    Tensor gate;     // [N] sigmoid gate values (gated only)
  };

  SharedExperts(const std::string& prefix, const config::ModelConfig& config, uint64_t seed,
                const dist::TensorParallelRegions& tp = {});

  // residual [N, h] + the shared experts' output for inp [N, h] (the MoE
  // layer's routed output is the residual). Ungated, linear_fc2 adds it (in
  // its GEMM with one tp rank); gated, it is added after the gate.
  Tensor forward(const Tensor& inp, Context& context, const Tensor& residual) const;
  // Adds the input gradient to dinp [N, h] (ungated: in linear_fc1's GEMM
  // with one tp rank); accumulates parameter grads.
  void backward_accumulate(Tensor& dinp, const Tensor& dout, const Context& context);

  void collect(std::vector<Parameter*>& parameters);

 private:
  MLP mlp_;
  std::optional<Parameter> gate_weight_;
};

}  // namespace moebench::model
