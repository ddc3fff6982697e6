#include "moebench/model/rmsnorm.h"

#include "moebench/model/parameter_init.h"
#include "moebench/ops/elementwise.h"
#include "moebench/ops/rmsnorm.h"

namespace moebench::model {

RMSNorm::RMSNorm(const std::string& weight_name, int64_t channels, double eps)
    : weight(constant_parameter(weight_name, {channels}, 1.0f)), eps(eps) {}

Tensor RMSNorm::forward(const Tensor& inp, Context& context) const {
  const int64_t c = weight.value.numel();
  const int64_t n = inp.numel() / c;
  Tensor out = ops::empty_like(inp);
  context.inp = inp;
  context.rstd = Tensor::empty({n}, ops::statistic_dtype(inp), inp.device());
  ops::rmsnorm_forward(out, context.rstd, inp, weight.value, eps);
  return out;
}

Tensor RMSNorm::backward(const Tensor& dout, const Context& context, const Tensor& residual_grad) {
  Tensor dinp = ops::empty_like(context.inp);
  ops::rmsnorm_backward(dinp, weight.grad, dout, context.inp, weight.value, context.rstd, residual_grad);
  return dinp;
}

}  // namespace moebench::model
