#include "moebench/ops/elementwise.h"

#include <initializer_list>

#include "moebench/core/device_transfer.h"
#include "moebench/core/error.h"
#include "moebench/ops/tensor_checks.h"

#ifdef MOEBENCH_WITH_CUDA
#include "moebench/ops/cuda_stream.h"
#endif

namespace moebench::ops {
namespace {

using namespace checks;

#ifdef MOEBENCH_WITH_CUDA
__nv_bfloat16* bf16(const Tensor& t) { return bf16_ptr(t); }
#endif

void require_columns(const char* op, const Tensor& dst, int64_t dst_width, int64_t dst_col, const Tensor& src,
                     int64_t src_width, int64_t src_col, int64_t rows, int64_t count) {
  require_contiguous(op, "dst", dst);
  require_contiguous(op, "src", src);
  require_same_device(op, "src", src, dst, "dst");
  if (src.dtype() != dst.dtype())
    throw Error(std::string("ops::") + op + ": src " + src.describe() + " and dst " + dst.describe() +
                " must have one dtype");
  if (dst_col < 0 || src_col < 0 || count < 0 || rows < 0 || dst_col + count > dst_width ||
      src_col + count > src_width || rows * dst_width > dst.numel() || rows * src_width > src.numel())
    throw Error(std::string("ops::") + op + ": columns [" + std::to_string(src_col) + ", +" + std::to_string(count) +
                ") of " + std::to_string(rows) + " rows of width " + std::to_string(src_width) + " (src " +
                src.describe() + ") into column " + std::to_string(dst_col) + " of width " +
                std::to_string(dst_width) + " (dst " + dst.describe() + ") do not fit");
}

}  // namespace

Tensor empty_like(const Tensor& like, const std::vector<int64_t>& shape) {
  return Tensor::empty(shape, like.dtype(), like.device());
}

Tensor empty_like(const Tensor& like) { return empty_like(like, like.shape()); }

void add_(Tensor& target, const Tensor& addend) {
  const char* op = "add_";
  require_contiguous(op, "target", target);
  require_contiguous(op, "addend", addend);
  require_same_device(op, "addend", addend, target, "target");
  require_numel(op, "addend", addend, target.numel());
  if (addend.dtype() != target.dtype()) unsupported(op, "addend", addend, "of target's dtype");
  if (is_cuda(op, target)) {
#ifdef MOEBENCH_WITH_CUDA
    if (target.dtype() == DType::BF16) return cuda::add(bf16(target), bf16(addend), target.numel(), current_stream());
    if (target.dtype() == DType::F32)
      return cuda::add(target.data<float>(), addend.data<float>(), target.numel(), current_stream());
    unsupported(op, "target", target, "bf16 or f32 on CUDA");
#endif
  }
  if (target.dtype() == DType::F32) return cpu::add(target.data<float>(), addend.data<float>(), target.numel());
  if (target.dtype() == DType::F64) return cpu::add(target.data<double>(), addend.data<double>(), target.numel());
  unsupported(op, "target", target, "f32 or f64 on the CPU");
}

void zero_(Tensor& tensor) {
  require_contiguous("zero_", "tensor", tensor);
  if (is_cuda("zero_", tensor)) {
#ifdef MOEBENCH_WITH_CUDA
    if (tensor.nbytes() > 0) cudaMemsetAsync(tensor.data_ptr(), 0, tensor.nbytes(), current_stream());
    return;
#endif
  }
  tensor.fill_(0.0);
}

void scale_(Tensor& values, double factor) {
  const char* op = "scale_";
  require_contiguous(op, "values", values);
  require_dtype(op, "values", values, {DType::F32});
  if (is_cuda(op, values)) {
#ifdef MOEBENCH_WITH_CUDA
    return cuda::scale(values.data<float>(), factor, values.numel(), current_stream());
#endif
  }
  float* v = values.data<float>();
  for (int64_t i = 0, n = values.numel(); i < n; ++i) v[i] = float(v[i] * factor);
}

Tensor cast(const Tensor& source, DType dtype) {
  const char* op = "cast";
  require_defined(op, "source", source);
  if (source.dtype() == dtype) return source;
  if (!is_cuda(op, source)) return source.contiguous().to(dtype);
#ifdef MOEBENCH_WITH_CUDA
  require_contiguous(op, "source", source);
  Tensor out = Tensor::empty(source.shape(), dtype, source.device());
  const int64_t n = source.numel();
  if (source.dtype() == DType::F32 && dtype == DType::BF16) {
    cuda::cast(bf16(out), source.data<float>(), n, current_stream());
  } else if (source.dtype() == DType::BF16 && dtype == DType::F32) {
    cuda::cast(out.data<float>(), bf16(source), n, current_stream());
  } else if (source.dtype() == DType::I64 && dtype == DType::I32) {
    cuda::cast(out.data<int32_t>(), source.data<int64_t>(), n, current_stream());
  } else {
    throw Error("ops::cast: CUDA casts f32 <-> bf16 and i64 -> i32, not " + source.describe() + " to " +
                std::string(name(dtype)));
  }
  return out;
#else
  return source;  // not reached: is_cuda throws in a build without CUDA
#endif
}

Tensor to_device_of(const Tensor& source, const Tensor& like) {
  require_defined("to_device_of", "source", source);
  if (source.device() == like.device()) return source;
#ifdef MOEBENCH_WITH_CUDA
  return like.device().is_cuda() ? to_device(source, like.device()) : to_host(source);
#else
  throw Error("ops::to_device_of: cannot move " + source.describe() + " to " + like.device().str() +
              " in a build without CUDA");
#endif
}

Tensor to_cpu(const Tensor& source) {
  require_defined("to_cpu", "source", source);
  if (source.device().is_cpu()) return source;
#ifdef MOEBENCH_WITH_CUDA
  return to_host(source);
#else
  throw Error("ops::to_cpu: got " + source.describe() + " in a build without CUDA");
#endif
}

DType statistic_dtype(const Tensor& like) { return like.device().is_cuda() ? DType::F32 : like.dtype(); }

void copy_columns(Tensor& dst, int64_t dst_width, int64_t dst_col, const Tensor& src, int64_t src_width,
                  int64_t src_col, int64_t rows, int64_t count) {
  require_columns("copy_columns", dst, dst_width, dst_col, src, src_width, src_col, rows, count);
  if (is_cuda("copy_columns", dst)) {
#ifdef MOEBENCH_WITH_CUDA
    return cuda::copy_columns(dst.data_ptr(), dst_width, dst_col, src.data_ptr(), src_width, src_col, rows, count,
                              int64_t(size_in_bytes(dst.dtype())), current_stream());
#endif
  }
  if (dst.dtype() == DType::F32)
    return cpu::copy_columns(dst.data<float>(), dst_width, dst_col, src.data<float>(), src_width, src_col, rows,
                             count);
  if (dst.dtype() == DType::F64)
    return cpu::copy_columns(dst.data<double>(), dst_width, dst_col, src.data<double>(), src_width, src_col, rows,
                             count);
  unsupported("copy_columns", "dst", dst, "f32 or f64 on the CPU");
}

void add_columns(Tensor& dst, int64_t dst_width, int64_t dst_col, const Tensor& src, int64_t src_width,
                 int64_t src_col, int64_t rows, int64_t count) {
  require_columns("add_columns", dst, dst_width, dst_col, src, src_width, src_col, rows, count);
  if (is_cuda("add_columns", dst)) {
#ifdef MOEBENCH_WITH_CUDA
    if (dst.dtype() != DType::BF16) unsupported("add_columns", "dst", dst, "bf16 on CUDA");
    return cuda::add_columns(bf16(dst), dst_width, dst_col, bf16(src), src_width, src_col, rows, count,
                             current_stream());
#endif
  }
  if (dst.dtype() == DType::F32)
    return cpu::add_columns(dst.data<float>(), dst_width, dst_col, src.data<float>(), src_width, src_col, rows,
                            count);
  if (dst.dtype() == DType::F64)
    return cpu::add_columns(dst.data<double>(), dst_width, dst_col, src.data<double>(), src_width, src_col, rows,
                            count);
  unsupported("add_columns", "dst", dst, "f32 or f64 on the CPU");
}

void accumulate_sum_of_squares(Tensor& total, const Tensor& values) {
  const char* op = "accumulate_sum_of_squares";
  require_contiguous(op, "values", values);
  require_dtype(op, "values", values, {DType::F32});
  require_dtype(op, "total", total, {DType::F64});
  require_same_device(op, "total", total, values, "values");
  if (total.numel() != 1) throw Error(std::string(op) + ": total is " + total.describe() + "; it must hold one value");
  if (is_cuda(op, values)) {
#ifdef MOEBENCH_WITH_CUDA
    return cuda::accumulate_sum_of_squares(total.data<double>(), values.data<float>(), values.numel(),
                                           current_stream());
#endif
  }
  double squares = 0;
  const float* v = values.data<float>();
  for (int64_t i = 0, n = values.numel(); i < n; ++i) squares += double(v[i]) * double(v[i]);
  total.data<double>()[0] += squares;
}

double sum_of_squares(const std::vector<const Tensor*>& tensors) {
  if (tensors.empty()) return 0.0;
  Tensor total = Tensor::empty({1}, DType::F64, tensors.front()->device());
  zero_(total);
  for (const Tensor* t : tensors) accumulate_sum_of_squares(total, *t);
  return to_host(total).data<double>()[0];
}

void sigmoid_gate_forward(Tensor& out, Tensor& gate, const Tensor& inp, const Tensor& weight,
                          const Tensor& mlp_out) {
  const char* op = "sigmoid_gate_forward";
  require_activation(op, "inp", inp);
  const int64_t n = inp.size(0), hidden = inp.numel() / n;
  for (const Tensor* t : std::initializer_list<const Tensor*>{&out, &mlp_out}) {
    require_activation(op, "out/mlp_out", *t);
    require_numel(op, "out/mlp_out", *t, inp.numel());
  }
  require_numel(op, "weight", weight, hidden);
  require_contiguous(op, "gate", gate);
  require_numel(op, "gate", gate, n);
  if (is_cuda(op, inp)) {
#ifdef MOEBENCH_WITH_CUDA
    require_dtype(op, "gate", gate, {DType::F32});
    return cuda::sigmoid_gate_forward(bf16(out), gate.data<float>(), bf16(inp), bf16(weight), bf16(mlp_out), n,
                                      hidden, current_stream());
#endif
  }
  if (inp.dtype() == DType::F32)
    return cpu::sigmoid_gate_forward(out.data<float>(), gate.data<float>(), inp.data<float>(),
                                     weight.data<float>(), mlp_out.data<float>(), n, hidden);
  return cpu::sigmoid_gate_forward(out.data<double>(), gate.data<double>(), inp.data<double>(),
                                   weight.data<double>(), mlp_out.data<double>(), n, hidden);
}

void sigmoid_gate_backward(Tensor& dmlp_out, Tensor& dlogit, Tensor& dweight, const Tensor& dout,
                           const Tensor& inp, const Tensor& mlp_out, const Tensor& gate) {
  const char* op = "sigmoid_gate_backward";
  require_activation(op, "inp", inp);
  const int64_t n = inp.size(0), hidden = inp.numel() / n;
  for (const Tensor* t : std::initializer_list<const Tensor*>{&dmlp_out, &dout, &mlp_out}) {
    require_activation(op, "dmlp_out/dout/mlp_out", *t);
    require_numel(op, "dmlp_out/dout/mlp_out", *t, inp.numel());
  }
  require_numel(op, "dweight", dweight, hidden);
  require_numel(op, "dlogit", dlogit, n);
  require_numel(op, "gate", gate, n);
  if (is_cuda(op, inp)) {
#ifdef MOEBENCH_WITH_CUDA
    require_dtype(op, "dweight", dweight, {DType::F32});
    return cuda::sigmoid_gate_backward(bf16(dmlp_out), dlogit.data<float>(), dweight.data<float>(), bf16(dout),
                                       bf16(inp), bf16(mlp_out), gate.data<float>(), n, hidden, current_stream());
#endif
  }
  if (inp.dtype() == DType::F32)
    return cpu::sigmoid_gate_backward(dmlp_out.data<float>(), dlogit.data<float>(), dweight.data<float>(),
                                      dout.data<float>(), inp.data<float>(), mlp_out.data<float>(),
                                      gate.data<float>(), n, hidden);
  return cpu::sigmoid_gate_backward(dmlp_out.data<double>(), dlogit.data<double>(), dweight.data<double>(),
                                    dout.data<double>(), inp.data<double>(), mlp_out.data<double>(),
                                    gate.data<double>(), n, hidden);
}

void sigmoid_gate_input_backward(Tensor& dinp, const Tensor& dlogit, const Tensor& weight) {
  const char* op = "sigmoid_gate_input_backward";
  require_activation(op, "dinp", dinp);
  const int64_t n = dinp.size(0), hidden = dinp.numel() / n;
  require_numel(op, "dlogit", dlogit, n);
  require_numel(op, "weight", weight, hidden);
  if (is_cuda(op, dinp)) {
#ifdef MOEBENCH_WITH_CUDA
    return cuda::sigmoid_gate_input_backward(bf16(dinp), dlogit.data<float>(), bf16(weight), n, hidden,
                                             current_stream());
#endif
  }
  if (dinp.dtype() == DType::F32)
    return cpu::sigmoid_gate_input_backward(dinp.data<float>(), dlogit.data<float>(), weight.data<float>(), n,
                                            hidden);
  return cpu::sigmoid_gate_input_backward(dinp.data<double>(), dlogit.data<double>(), weight.data<double>(), n,
                                          hidden);
}

}  // namespace moebench::ops
