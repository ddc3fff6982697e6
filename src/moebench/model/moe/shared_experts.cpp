#include "moebench/model/moe/shared_experts.h"

#include <cmath>

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

Tensor SharedExperts::forward(const Tensor& inp, Context& context) const {
  context.mlp_out = mlp_.forward(inp, context.mlp);
  if (!gate_weight_) return context.mlp_out;
  context.gate = Tensor::empty({inp.size(0)}, ops::statistic_dtype(inp), inp.device());
  Tensor out = ops::empty_like(context.mlp_out);
  ops::sigmoid_gate_forward(out, context.gate, inp, gate_weight_->value, context.mlp_out);
  return out;
}

Tensor SharedExperts::backward(const Tensor& dout, const Context& context) {
  if (!gate_weight_) return mlp_.backward(dout, context.mlp);
  const Tensor& inp = context.mlp.inp;
  Tensor dmlp_out = ops::empty_like(context.mlp_out);
  Tensor dlogit = Tensor::empty({inp.size(0)}, ops::statistic_dtype(inp), inp.device());
  ops::sigmoid_gate_backward(dmlp_out, dlogit, gate_weight_->grad, dout, inp, context.mlp_out, context.gate);
  Tensor dinp = mlp_.backward(dmlp_out, context.mlp);
  ops::sigmoid_gate_input_backward(dinp, dlogit, gate_weight_->value);
  return dinp;
}

void SharedExperts::collect(std::vector<Parameter*>& parameters) {
  mlp_.collect(parameters);
  if (gate_weight_) parameters.push_back(&*gate_weight_);
}

}  // namespace moebench::model
