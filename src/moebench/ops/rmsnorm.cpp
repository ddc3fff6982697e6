#include "moebench/ops/rmsnorm.h"

#include <initializer_list>

#include "moebench/ops/tensor_checks.h"

#ifdef MOEBENCH_WITH_CUDA
#include "moebench/ops/cuda_stream.h"
#endif

namespace moebench::ops {

using namespace checks;

void rmsnorm_forward(Tensor& out, Tensor& rstd, const Tensor& inp, const Tensor& weight, double eps) {
  const char* op = "rmsnorm_forward";
  require_activation(op, "inp", inp);
  require_activation(op, "out", out);
  require_activation(op, "weight", weight);
  require_contiguous(op, "rstd", rstd);
  for (const Tensor* t : std::initializer_list<const Tensor*>{&out, &weight, &rstd}) require_same_device(op, "out/weight/rstd", *t, inp, "inp");
  const int64_t c = weight.numel(), n = c > 0 ? inp.numel() / c : 0;
  require_numel(op, "out", out, inp.numel());
  require_numel(op, "rstd", rstd, n);
  if (is_cuda(op, inp)) {
#ifdef MOEBENCH_WITH_CUDA
    require_dtype(op, "rstd", rstd, {DType::F32});
    return cuda::rmsnorm_forward(bf16_ptr(out), rstd.data<float>(), bf16_ptr(inp), bf16_ptr(weight), n, c,
                                 float(eps), current_stream());
#endif
  }
  if (inp.dtype() == DType::F32)
    return cpu::rmsnorm_forward(out.data<float>(), rstd.data<float>(), inp.data<float>(), weight.data<float>(), n,
                                c, static_cast<float>(eps));
  cpu::rmsnorm_forward(out.data<double>(), rstd.data<double>(), inp.data<double>(), weight.data<double>(), n, c,
                       eps);
}

void rmsnorm_backward(Tensor& dinp, Tensor& dweight, const Tensor& dout, const Tensor& inp, const Tensor& weight,
                      const Tensor& rstd, const Tensor& residual_grad) {
  const char* op = "rmsnorm_backward";
  require_activation(op, "inp", inp);
  require_activation(op, "dout", dout);
  require_activation(op, "dinp", dinp);
  require_contiguous(op, "dweight", dweight);
  require_contiguous(op, "rstd", rstd);
  for (const Tensor* t : std::initializer_list<const Tensor*>{&dout, &dinp, &weight, &dweight, &rstd})
    require_same_device(op, "dout/dinp/weight/dweight/rstd", *t, inp, "inp");
  const int64_t c = weight.numel(), n = c > 0 ? inp.numel() / c : 0;
  require_numel(op, "dinp", dinp, inp.numel());
  require_numel(op, "dout", dout, inp.numel());
  require_numel(op, "dweight", dweight, c);
  require_numel(op, "rstd", rstd, n);
  const bool has_residual = residual_grad.defined();
  if (has_residual) {
    require_activation(op, "residual_grad", residual_grad);
    require_dtype(op, "residual_grad", residual_grad, {inp.dtype()});
    require_same_device(op, "residual_grad", residual_grad, inp, "inp");
    require_numel(op, "residual_grad", residual_grad, inp.numel());
  }
  if (is_cuda(op, inp)) {
#ifdef MOEBENCH_WITH_CUDA
    require_dtype(op, "dweight", dweight, {DType::F32});
    if (n == 0) return;
    Tensor scratch = Tensor::empty({int64_t(cuda::rmsnorm_backward_scratch_floats(n, c))}, DType::F32, inp.device());
    return cuda::rmsnorm_backward(bf16_ptr(dinp), dweight.data<float>(), bf16_ptr(dout), bf16_ptr(inp),
                                  bf16_ptr(weight), rstd.data<float>(),
                                  has_residual ? bf16_ptr(residual_grad) : nullptr, n, c, scratch.data<float>(),
                                  current_stream());
#endif
  }
  if (inp.dtype() == DType::F32)
    return cpu::rmsnorm_backward(dinp.data<float>(), dweight.data<float>(), dout.data<float>(), inp.data<float>(),
                                 weight.data<float>(), rstd.data<float>(),
                                 has_residual ? residual_grad.data<float>() : nullptr, n, c);
  cpu::rmsnorm_backward(dinp.data<double>(), dweight.data<double>(), dout.data<double>(), inp.data<double>(),
                        weight.data<double>(), rstd.data<double>(),
                        has_residual ? residual_grad.data<double>() : nullptr, n, c);
}

}  // namespace moebench::ops
