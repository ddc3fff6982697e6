#include "moebench/model/rmsnorm.h"

#include "moebench/model/parameter_init.h"
#include "moebench/ops/rmsnorm.h"

namespace moebench::model {

RMSNorm::RMSNorm(const std::string& weight_name, int64_t channels, double eps)
    : weight(constant_parameter(weight_name, {channels}, 1.0f)), eps(eps) {}

Tensor RMSNorm::forward(const Tensor& inp, Context& context) const {
  const int64_t c = weight.value.numel();
  const int64_t n = inp.numel() / c;
  Tensor out = Tensor::empty(inp.shape(), DType::F32);
  context.inp = inp;
  context.rstd = Tensor::empty({n}, DType::F32);
  ops::cpu::rmsnorm_forward(out.data<float>(), context.rstd.data<float>(), inp.data<float>(),
                            weight.value.data<float>(), n, c, static_cast<float>(eps));
  return out;
}

Tensor RMSNorm::backward(const Tensor& dout, const Context& context) {
  const int64_t c = weight.value.numel();
  const int64_t n = context.inp.numel() / c;
  Tensor dinp = Tensor::empty(context.inp.shape(), DType::F32);
  ops::cpu::rmsnorm_backward(dinp.data<float>(), weight.grad.data<float>(), dout.data<float>(),
                             context.inp.data<float>(), weight.value.data<float>(),
                             context.rstd.data<float>(), n, c);
  return dinp;
}

}  // namespace moebench::model
