#include "moebench/model/mlp.h"

#include "moebench/ops/elementwise.h"
#include "moebench/ops/swiglu.h"

namespace moebench::model {

MLP::MLP(const std::string& prefix, int64_t hidden, int64_t ffn, float std, float fc2_std,
         uint64_t seed, const dist::TensorParallelRegions& tp)
    : linear_fc1_(prefix + ".linear_fc1", hidden, 2 * ffn, std, seed, tp, false, 2),
      linear_fc2_(prefix + ".linear_fc2", ffn, hidden, fc2_std, seed, tp) {}

Tensor MLP::forward(const Tensor& inp, Context& context, const Tensor& residual) const {
  context.inp = inp;
  context.fc1 = linear_fc1_.forward(inp);
  const int64_t n = context.fc1.size(0), ffn = linear_fc2_.in_features();
  context.act = ops::empty_like(context.fc1, {n, ffn});
  ops::swiglu_forward(context.act, context.fc1);
  return linear_fc2_.forward(context.act, residual);
}

Tensor MLP::fc1_gradient(const Tensor& dout, const Context& context) {
  const int64_t n = context.fc1.size(0), ffn = linear_fc2_.in_features();
  Tensor dact = linear_fc2_.backward(dout, context.act);
  Tensor dfc1 = ops::empty_like(dact, {n, 2 * ffn});
  ops::swiglu_backward(dfc1, dact, context.fc1);
  return dfc1;
}

Tensor MLP::backward(const Tensor& dout, const Context& context) {
  return linear_fc1_.backward(fc1_gradient(dout, context), context.inp);
}

void MLP::backward_accumulate(Tensor& dinp, const Tensor& dout, const Context& context) {
  linear_fc1_.backward_accumulate(dinp, fc1_gradient(dout, context), context.inp);
}

void MLP::collect(std::vector<Parameter*>& parameters) {
  linear_fc1_.collect(parameters);
  linear_fc2_.collect(parameters);
}

}  // namespace moebench::model
