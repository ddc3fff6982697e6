#include "moebench/model/moe/shared_experts.h"

#include <cmath>

#include "moebench/model/elementwise.h"
#include "moebench/model/parameter_init.h"
#include "moebench/ops/elementwise.h"

namespace moebench::model {

SharedExperts::SharedExperts(const std::string& prefix, const config::ModelConfig& config,
                             uint64_t seed, const dist::TensorParallelRegions& tp)
    : mlp_(prefix, config.hidden_size, config.moe.shared_expert_size,
           float(config.init_method_std),
           float(config.init_method_std / std::sqrt(2.0 * config.num_layers)), seed, tp) {
  if (config.moe.shared_expert_gate) {
    gate_weight_ = normal_parameter(prefix + ".gate_weight", {1, config.hidden_size},
                                    float(config.init_method_std), seed);
    gate_weight_->grad_partial_over_tp = tp.sequence_parallel();  // it gates this rank's tokens only
  }
}

Tensor SharedExperts::forward(const Tensor& inp, Context& context, const Tensor& residual) const {
  if (!gate_weight_) return mlp_.forward(inp, context.mlp, residual);
  context.mlp_out = mlp_.forward(inp, context.mlp);
  context.gate = Tensor::empty({inp.size(0)}, ops::statistic_dtype(inp), inp.device());
  Tensor out = ops::empty_like(context.mlp_out);
  ops::sigmoid_gate_forward(out, context.gate, inp, gate_weight_->value, context.mlp_out);
  add_into(out, residual);
  return out;
}

void SharedExperts::backward_accumulate(Tensor& dinp, const Tensor& dout, const Context& context) {
  if (!gate_weight_) return mlp_.backward_accumulate(dinp, dout, context.mlp);
  const Tensor& inp = context.mlp.inp;
  Tensor dmlp_out = ops::empty_like(context.mlp_out);
  Tensor dlogit = Tensor::empty({inp.size(0)}, ops::statistic_dtype(inp), inp.device());
  ops::sigmoid_gate_backward(dmlp_out, dlogit, gate_weight_->grad, dout, inp, context.mlp_out, context.gate);
  // The gate's two input-gradient terms are summed before they meet dinp, as
  // when the shared experts returned their own gradient.
  Tensor dshared = mlp_.backward(dmlp_out, context.mlp);
  ops::sigmoid_gate_input_backward(dshared, dlogit, gate_weight_->value);
  add_into(dinp, dshared);
}

void SharedExperts::collect(std::vector<Parameter*>& parameters) {
  mlp_.collect(parameters);
  if (gate_weight_) parameters.push_back(&*gate_weight_);
}

}  // namespace moebench::model
