#include "moebench/ops/gemm.h"

#include <cstdint>
#include <initializer_list>
#include <string>

#include "moebench/core/error.h"
#include "moebench/ops/elementwise.h"
#include "moebench/ops/tensor_checks.h"

#ifdef MOEBENCH_WITH_CUDA
#include "moebench/ops/cuda_stream.h"
#endif

namespace moebench::ops {
namespace {

using namespace checks;

struct GemmDims {
  int64_t m, n, k;
};

GemmDims gemm_dims(const char* op, const Tensor& c, const Tensor& a, const Tensor& b, GemmLayout layout) {
  if (a.dim() != 2 || b.dim() != 2 || c.dim() != 2)
    throw Error(std::string("ops::") + op + ": a, b and c must be 2-D, got a " + a.describe() + ", b " +
                b.describe() + ", c " + c.describe());
  GemmDims d{};
  int64_t b_k = 0;
  switch (layout) {
    case GemmLayout::kNN: d = {a.size(0), b.size(1), a.size(1)}; b_k = b.size(0); break;
    case GemmLayout::kNT: d = {a.size(0), b.size(0), a.size(1)}; b_k = b.size(1); break;
    case GemmLayout::kTN: d = {a.size(1), b.size(1), a.size(0)}; b_k = b.size(0); break;
  }
  if (b_k != d.k || c.size(0) != d.m || c.size(1) != d.n)
    throw Error(std::string("ops::") + op + ": shapes do not fit the layout: a " + a.describe() + ", b " +
                b.describe() + ", c " + c.describe());
  return d;
}

// linear_forward's residual: out's dtype, device and element count, and
// either out itself or apart from it (a partial overlap would be read after
// it was written).
void require_residual(const char* op, const Tensor& residual, const Tensor& out) {
  require_contiguous(op, "residual", residual);
  require_same_device(op, "residual", residual, out, "out");
  if (residual.dtype() != out.dtype()) unsupported(op, "residual", residual, "of out's dtype");
  require_numel(op, "residual", residual, out.numel());
  const auto first = reinterpret_cast<std::uintptr_t>(residual.data_ptr());
  const auto out_first = reinterpret_cast<std::uintptr_t>(out.data_ptr());
  const bool overlaps = first < out_first + out.nbytes() && out_first < first + residual.nbytes();
  if (overlaps && first != out_first)
    throw Error(std::string("ops::") + op + ": residual " + residual.describe() +
                " partly overlaps out; pass out itself or a separate tensor");
}

}  // namespace

void gemm(Tensor& c, const Tensor& a, const Tensor& b, GemmLayout layout, GemmOutput output) {
  const char* op = "gemm";
  require_activation(op, "a", a);
  require_contiguous(op, "b", b);
  require_contiguous(op, "c", c);
  require_same_device(op, "b", b, a, "a");
  require_same_device(op, "c", c, a, "a");
  if (b.dtype() != a.dtype()) unsupported(op, "b", b, "of a's dtype");
  const GemmDims d = gemm_dims(op, c, a, b, layout);
  if (is_cuda(op, a)) {
#ifdef MOEBENCH_WITH_CUDA
    if (d.m == 0 || d.n == 0) return;
    if (d.k == 0) {
      if (output == GemmOutput::kOverwrite) zero_(c);
      return;
    }
    auto& context = cuda::GemmContext::for_current_device();
    if (c.dtype() == DType::F32)
      return cuda::gemm(context, c.data<float>(), bf16_ptr(a), bf16_ptr(b), d.m, d.n, d.k, layout, output,
                        current_stream());
    if (c.dtype() == DType::BF16)
      return cuda::gemm(context, bf16_ptr(c), bf16_ptr(a), bf16_ptr(b), nullptr,
                        output == GemmOutput::kAccumulate ? bf16_ptr(c) : nullptr, d.m, d.n, d.k, layout,
                        current_stream());
    unsupported(op, "c", c, "f32 or bf16 on CUDA");
#endif
  }
  if (c.dtype() != a.dtype()) unsupported(op, "c", c, "of a's dtype on the CPU");
  if (a.dtype() == DType::F32)
    return cpu::gemm(c.data<float>(), a.data<float>(), b.data<float>(), d.m, d.n, d.k, layout, output);
  cpu::gemm(c.data<double>(), a.data<double>(), b.data<double>(), d.m, d.n, d.k, layout, output);
}

void linear_forward(Tensor& out, const Tensor& inp, const Tensor& weight, const Tensor& bias,
                    const Tensor& residual) {
  const char* op = "linear_forward";
  require_activation(op, "inp", inp);
  require_contiguous(op, "weight", weight);
  require_contiguous(op, "out", out);
  require_same_device(op, "weight", weight, inp, "inp");
  require_same_device(op, "out", out, inp, "inp");
  if (weight.dim() != 2 || weight.dtype() != inp.dtype())
    unsupported(op, "weight", weight, "2-D [out_features, in_features] of inp's dtype");
  const int64_t in = weight.size(1), outf = weight.size(0);
  if (inp.numel() % in != 0) unsupported(op, "inp", inp, ("rows of " + std::to_string(in) + " features").c_str());
  const int64_t n = inp.numel() / in;
  require_numel(op, "out", out, n * outf);
  if (bias.defined()) {
    require_contiguous(op, "bias", bias);
    require_same_device(op, "bias", bias, inp, "inp");
    require_numel(op, "bias", bias, outf);
    if (bias.dtype() != inp.dtype()) unsupported(op, "bias", bias, "of inp's dtype");
  }
  if (residual.defined()) require_residual(op, residual, out);
  if (is_cuda(op, inp)) {
#ifdef MOEBENCH_WITH_CUDA
    if (n == 0) return;
    auto& context = cuda::GemmContext::for_current_device();
    if (out.dtype() == DType::BF16)
      return cuda::gemm(context, bf16_ptr(out), bf16_ptr(inp), bf16_ptr(weight),
                        bias.defined() ? bf16_ptr(bias) : nullptr, residual.defined() ? bf16_ptr(residual) : nullptr,
                        n, outf, in, GemmLayout::kNT, current_stream());
    if (out.dtype() == DType::F32 && !bias.defined() && !residual.defined())
      return cuda::gemm(context, out.data<float>(), bf16_ptr(inp), bf16_ptr(weight), n, outf, in, GemmLayout::kNT,
                        GemmOutput::kOverwrite, current_stream());
    unsupported(op, "out", out, "bf16, or f32 without a bias or residual, on CUDA");
#endif
  }
  if (out.dtype() != inp.dtype()) unsupported(op, "out", out, "of inp's dtype on the CPU");
  if (inp.dtype() == DType::F32)
    return cpu::linear_forward(out.data<float>(), inp.data<float>(), weight.data<float>(),
                               bias.defined() ? bias.data<float>() : nullptr,
                               residual.defined() ? residual.data<float>() : nullptr, n, in, outf);
  cpu::linear_forward(out.data<double>(), inp.data<double>(), weight.data<double>(),
                      bias.defined() ? bias.data<double>() : nullptr,
                      residual.defined() ? residual.data<double>() : nullptr, n, in, outf);
}

void linear_backward(Tensor& dinp, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& inp,
                     const Tensor& weight, GemmOutput dinp_output) {
  const char* op = "linear_backward";
  require_activation(op, "inp", inp);
  require_activation(op, "dout", dout);
  require_activation(op, "dinp", dinp);
  require_contiguous(op, "weight", weight);
  require_contiguous(op, "dweight", dweight);
  for (const Tensor* t : std::initializer_list<const Tensor*>{&dout, &dinp, &weight, &dweight}) require_same_device(op, "dout/dinp/weight/dweight", *t, inp, "inp");
  const int64_t in = weight.size(1), outf = weight.size(0);
  const int64_t n = inp.numel() / in;
  require_numel(op, "dinp", dinp, n * in);
  require_numel(op, "dout", dout, n * outf);
  require_numel(op, "dweight", dweight, outf * in);
  if (dbias.defined()) {
    require_contiguous(op, "dbias", dbias);
    require_numel(op, "dbias", dbias, outf);
  }
  if (is_cuda(op, inp)) {
#ifdef MOEBENCH_WITH_CUDA
    require_dtype(op, "dweight", dweight, {DType::F32});
    if (n == 0) return;
    auto& context = cuda::GemmContext::for_current_device();
    const cudaStream_t stream = current_stream();
    cuda::gemm(context, bf16_ptr(dinp), bf16_ptr(dout), bf16_ptr(weight), nullptr,
               dinp_output == GemmOutput::kAccumulate ? bf16_ptr(dinp) : nullptr, n, in, outf, GemmLayout::kNN,
               stream);
    cuda::gemm(context, dweight.data<float>(), bf16_ptr(dout), bf16_ptr(inp), outf, in, n, GemmLayout::kTN,
               GemmOutput::kAccumulate, stream);
    if (dbias.defined()) {
      require_dtype(op, "dbias", dbias, {DType::F32});
      // Column sums as ones[1, N] @ dout[N, OC], accumulated in fp32.
      Tensor ones = Tensor::empty({n}, DType::BF16, inp.device());
      cuda::fill(bf16_ptr(ones), 1.0f, n, stream);
      cuda::gemm(context, dbias.data<float>(), bf16_ptr(ones), bf16_ptr(dout), 1, outf, n, GemmLayout::kNN,
                 GemmOutput::kAccumulate, stream);
    }
    return;
#endif
  }
  if (inp.dtype() == DType::F32)
    return cpu::linear_backward(dinp.data<float>(), dweight.data<float>(),
                                dbias.defined() ? dbias.data<float>() : nullptr, dout.data<float>(),
                                inp.data<float>(), weight.data<float>(), n, in, outf, dinp_output);
  cpu::linear_backward(dinp.data<double>(), dweight.data<double>(), dbias.defined() ? dbias.data<double>() : nullptr,
                       dout.data<double>(), inp.data<double>(), weight.data<double>(), n, in, outf, dinp_output);
}

}  // namespace moebench::ops
