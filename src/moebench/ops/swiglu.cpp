#include "moebench/ops/swiglu.h"

#include "moebench/ops/tensor_checks.h"

#ifdef MOEBENCH_WITH_CUDA
#include "moebench/ops/cuda_stream.h"
#endif

namespace moebench::ops {

using namespace checks;

void swiglu_forward(Tensor& out, const Tensor& inp) {
  const char* op = "swiglu_forward";
  require_activation(op, "inp", inp);
  require_activation(op, "out", out);
  require_same_device(op, "out", out, inp, "inp");
  if (inp.dim() < 1 || inp.size(-1) % 2 != 0) unsupported(op, "inp", inp, "[N, 2F]");
  const int64_t f = inp.size(-1) / 2, n = f > 0 ? inp.numel() / (2 * f) : 0;
  require_numel(op, "out", out, n * f);
  if (is_cuda(op, inp)) {
#ifdef MOEBENCH_WITH_CUDA
    return cuda::swiglu_forward(bf16_ptr(out), bf16_ptr(inp), n, f, current_stream());
#endif
  }
  if (inp.dtype() == DType::F32) return cpu::swiglu_forward(out.data<float>(), inp.data<float>(), n, f);
  cpu::swiglu_forward(out.data<double>(), inp.data<double>(), n, f);
}

void swiglu_backward(Tensor& dinp, const Tensor& dout, const Tensor& inp) {
  const char* op = "swiglu_backward";
  require_activation(op, "inp", inp);
  require_activation(op, "dout", dout);
  require_activation(op, "dinp", dinp);
  require_same_device(op, "dout", dout, inp, "inp");
  require_same_device(op, "dinp", dinp, inp, "inp");
  if (inp.dim() < 1 || inp.size(-1) % 2 != 0) unsupported(op, "inp", inp, "[N, 2F]");
  const int64_t f = inp.size(-1) / 2, n = f > 0 ? inp.numel() / (2 * f) : 0;
  require_numel(op, "dout", dout, n * f);
  require_numel(op, "dinp", dinp, inp.numel());
  if (is_cuda(op, inp)) {
#ifdef MOEBENCH_WITH_CUDA
    return cuda::swiglu_backward(bf16_ptr(dinp), bf16_ptr(dout), bf16_ptr(inp), n, f, current_stream());
#endif
  }
  if (inp.dtype() == DType::F32)
    return cpu::swiglu_backward(dinp.data<float>(), dout.data<float>(), inp.data<float>(), n, f);
  cpu::swiglu_backward(dinp.data<double>(), dout.data<double>(), inp.data<double>(), n, f);
}

}  // namespace moebench::ops
