#include "moebench/model/moe/shared_experts.h"

#include <cmath>

#include "moebench/model/parameter_init.h"
#include "moebench/ops/activation.h"

namespace moebench::model {

SharedExperts::SharedExperts(const std::string& prefix, const config::ModelConfig& config,
                             uint64_t seed)
    : mlp_(prefix, config.hidden_size, config.moe.shared_expert_size,
           float(config.init_method_std),
           float(config.init_method_std / std::sqrt(2.0 * config.num_layers)), seed) {
  if (config.moe.shared_expert_gate)
    gate_weight_ = normal_parameter(prefix + ".gate_weight", {1, config.hidden_size},
                                    float(config.init_method_std), seed);
}

Tensor SharedExperts::forward(const Tensor& inp, Context& context) const {
  context.mlp_out = mlp_.forward(inp, context.mlp);
  if (!gate_weight_) return context.mlp_out;
  const int64_t n = inp.size(0), hidden = inp.size(1);
  const float* x = inp.data<float>();
  const float* w = gate_weight_->value.data<float>();
  context.gate = Tensor::empty({n}, DType::F32);
  Tensor out = Tensor::empty({n, hidden}, DType::F32);
  for (int64_t t = 0; t < n; ++t) {
    float logit = 0;
    for (int64_t c = 0; c < hidden; ++c) logit += x[t * hidden + c] * w[c];
    const float gate = ops::cpu::sigmoid(logit);
    context.gate.data<float>()[t] = gate;
    for (int64_t c = 0; c < hidden; ++c)
      out.data<float>()[t * hidden + c] = gate * context.mlp_out.data<float>()[t * hidden + c];
  }
  return out;
}

Tensor SharedExperts::backward(const Tensor& dout, const Context& context) {
  if (!gate_weight_) return mlp_.backward(dout, context.mlp);
  const Tensor& inp = context.mlp.inp;
  const int64_t n = inp.size(0), hidden = inp.size(1);
  const float* x = inp.data<float>();
  const float* w = gate_weight_->value.data<float>();
  float* dw = gate_weight_->grad.data<float>();
  Tensor dmlp_out = Tensor::empty({n, hidden}, DType::F32);
  std::vector<float> dlogit(n);
  for (int64_t t = 0; t < n; ++t) {
    const float gate = context.gate.data<float>()[t];
    float dgate = 0;
    for (int64_t c = 0; c < hidden; ++c) {
      const float d = dout.data<float>()[t * hidden + c];
      dmlp_out.data<float>()[t * hidden + c] = gate * d;
      dgate += d * context.mlp_out.data<float>()[t * hidden + c];
    }
    dlogit[t] = dgate * gate * (1 - gate);
    for (int64_t c = 0; c < hidden; ++c) dw[c] += dlogit[t] * x[t * hidden + c];
  }
  Tensor dinp = mlp_.backward(dmlp_out, context.mlp);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t c = 0; c < hidden; ++c) dinp.data<float>()[t * hidden + c] += dlogit[t] * w[c];
  return dinp;
}

void SharedExperts::collect(std::vector<Parameter*>& parameters) {
  mlp_.collect(parameters);
  if (gate_weight_) parameters.push_back(&*gate_weight_);
}

}  // namespace moebench::model
