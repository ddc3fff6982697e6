#include "moebench/ops/grouped_gemm.h"

#include <cstdlib>
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

struct GroupedDims {
  int64_t groups, capacity, n, k;
};

// w is [G, N, K]; token-side tensors have `capacity` rows of `token_width` columns.
GroupedDims grouped_dims(const char* op, const Tensor& tokens_a, const char* a_name, int64_t a_width_index,
                         const Tensor& tokens_b, const char* b_name, const Tensor& w, const char* w_name,
                         const Tensor& group_counts) {
  require_activation(op, a_name, tokens_a);
  require_activation(op, b_name, tokens_b);
  require_contiguous(op, w_name, w);
  require_contiguous(op, "group_counts", group_counts);
  require_dtype(op, "group_counts", group_counts, {DType::I32});
  require_same_device(op, b_name, tokens_b, tokens_a, a_name);
  require_same_device(op, w_name, w, tokens_a, a_name);
  require_same_device(op, "group_counts", group_counts, tokens_a, a_name);
  if (w.dim() != 3) unsupported(op, w_name, w, "[G, N, K]");
  GroupedDims d{w.size(0), 0, w.size(1), w.size(2)};
  require_numel(op, "group_counts", group_counts, d.groups);
  const int64_t a_width = a_width_index == 1 ? d.n : d.k;
  const int64_t b_width = a_width_index == 1 ? d.k : d.n;
  d.capacity = tokens_a.numel() / a_width;
  require_numel(op, a_name, tokens_a, d.capacity * a_width);
  require_numel(op, b_name, tokens_b, d.capacity * b_width);
  return d;
}

}  // namespace

GroupedGemmBackend grouped_gemm_backend() {
  static const GroupedGemmBackend backend = [] {
    const char* value = std::getenv("MOEBENCH_GROUPED_GEMM");
    const std::string choice = value ? value : "";
#ifdef MOEBENCH_WITH_CUDA
    if (choice.empty()) return current_device_is_hopper() ? GroupedGemmBackend::kSm90 : GroupedGemmBackend::kCublasLtLoop;
#endif
    if (choice.empty() || choice == "cublaslt") return GroupedGemmBackend::kCublasLtLoop;
    if (choice == "sm90") return GroupedGemmBackend::kSm90;
    if (choice == "kernel") return GroupedGemmBackend::kKernel;
    throw Error("MOEBENCH_GROUPED_GEMM='" + choice + "' is not a grouped GEMM; use sm90, cublaslt or kernel");
  }();
  return backend;
}

void m_grouped_gemm_nt_contiguous(Tensor& out, const Tensor& a, const Tensor& w, const Tensor& group_counts) {
  const char* op = "m_grouped_gemm_nt_contiguous";
  // out [M, N], a [M, K]
  const GroupedDims d = grouped_dims(op, out, "out", 1, a, "a", w, "w", group_counts);
  if (w.dtype() != a.dtype()) unsupported(op, "w", w, "of a's dtype");
  if (is_cuda(op, a)) {
#ifdef MOEBENCH_WITH_CUDA
    if (grouped_gemm_backend() == GroupedGemmBackend::kSm90)
      return cuda::m_grouped_bf16_gemm_nt_contiguous_sm90(bf16_ptr(out), bf16_ptr(a), bf16_ptr(w),
                                                          group_counts.data<int32_t>(), d.groups, d.capacity, d.n,
                                                          d.k, current_stream());
    if (grouped_gemm_backend() == GroupedGemmBackend::kKernel)
      return cuda::m_grouped_bf16_gemm_nt_contiguous(bf16_ptr(out), bf16_ptr(a), bf16_ptr(w),
                                                     group_counts.data<int32_t>(), d.groups, d.capacity, d.n, d.k,
                                                     current_stream());
    return cuda::m_grouped_bf16_gemm_nt_contiguous_cublaslt_loop(
        cuda::GemmContext::for_current_device(), bf16_ptr(out), bf16_ptr(a), bf16_ptr(w),
        group_counts.data<int32_t>(), d.groups, d.capacity, d.n, d.k, current_stream());
#endif
  }
  if (a.dtype() == DType::F32)
    return cpu::m_grouped_gemm_nt_contiguous(out.data<float>(), a.data<float>(), w.data<float>(),
                                             group_counts.data<int32_t>(), d.groups, d.n, d.k);
  cpu::m_grouped_gemm_nt_contiguous(out.data<double>(), a.data<double>(), w.data<double>(),
                                    group_counts.data<int32_t>(), d.groups, d.n, d.k);
}

void m_grouped_gemm_nn_contiguous(Tensor& da, const Tensor& dout, const Tensor& w, const Tensor& group_counts) {
  const char* op = "m_grouped_gemm_nn_contiguous";
  // dout [M, N], da [M, K]
  const GroupedDims d = grouped_dims(op, dout, "dout", 1, da, "da", w, "w", group_counts);
  if (w.dtype() != dout.dtype()) unsupported(op, "w", w, "of dout's dtype");
  if (is_cuda(op, dout)) {
#ifdef MOEBENCH_WITH_CUDA
    if (grouped_gemm_backend() == GroupedGemmBackend::kSm90)
      return cuda::m_grouped_bf16_gemm_nn_contiguous_sm90(bf16_ptr(da), bf16_ptr(dout), bf16_ptr(w),
                                                          group_counts.data<int32_t>(), d.groups, d.capacity, d.n,
                                                          d.k, current_stream());
    if (grouped_gemm_backend() == GroupedGemmBackend::kKernel)
      return cuda::m_grouped_bf16_gemm_nn_contiguous(bf16_ptr(da), bf16_ptr(dout), bf16_ptr(w),
                                                     group_counts.data<int32_t>(), d.groups, d.capacity, d.n, d.k,
                                                     current_stream());
    return cuda::m_grouped_bf16_gemm_nn_contiguous_cublaslt_loop(
        cuda::GemmContext::for_current_device(), bf16_ptr(da), bf16_ptr(dout), bf16_ptr(w),
        group_counts.data<int32_t>(), d.groups, d.capacity, d.n, d.k, current_stream());
#endif
  }
  if (dout.dtype() == DType::F32)
    return cpu::m_grouped_gemm_nn_contiguous(da.data<float>(), dout.data<float>(), w.data<float>(),
                                             group_counts.data<int32_t>(), d.groups, d.n, d.k);
  cpu::m_grouped_gemm_nn_contiguous(da.data<double>(), dout.data<double>(), w.data<double>(),
                                    group_counts.data<int32_t>(), d.groups, d.n, d.k);
}

void k_grouped_gemm_tn_contiguous(Tensor& dw, const Tensor& dout, const Tensor& a, const Tensor& group_counts) {
  const char* op = "k_grouped_gemm_tn_contiguous";
  // dout [M, N], a [M, K]
  const GroupedDims d = grouped_dims(op, dout, "dout", 1, a, "a", dw, "dw", group_counts);
  if (is_cuda(op, dout)) {
#ifdef MOEBENCH_WITH_CUDA
    require_dtype(op, "dw", dw, {DType::F32});
    if (grouped_gemm_backend() == GroupedGemmBackend::kSm90)
      return cuda::k_grouped_bf16_gemm_tn_contiguous_sm90(dw.data<float>(), bf16_ptr(dout), bf16_ptr(a),
                                                          group_counts.data<int32_t>(), d.groups, d.capacity, d.n,
                                                          d.k, current_stream());
    if (grouped_gemm_backend() == GroupedGemmBackend::kKernel)
      return cuda::k_grouped_bf16_gemm_tn_contiguous(dw.data<float>(), bf16_ptr(dout), bf16_ptr(a),
                                                     group_counts.data<int32_t>(), d.groups, d.capacity, d.n, d.k,
                                                     current_stream());
    return cuda::k_grouped_bf16_gemm_tn_contiguous_cublaslt_loop(
        cuda::GemmContext::for_current_device(), dw.data<float>(), bf16_ptr(dout), bf16_ptr(a),
        group_counts.data<int32_t>(), d.groups, d.capacity, d.n, d.k, current_stream());
#endif
  }
  if (dout.dtype() == DType::F32)
    return cpu::k_grouped_gemm_tn_contiguous(dw.data<float>(), dout.data<float>(), a.data<float>(),
                                             group_counts.data<int32_t>(), d.groups, d.n, d.k);
  cpu::k_grouped_gemm_tn_contiguous(dw.data<double>(), dout.data<double>(), a.data<double>(),
                                    group_counts.data<int32_t>(), d.groups, d.n, d.k);
}

void k_grouped_gemm_tn_contiguous(Tensor& dw, const std::vector<WeightGradientSegment>& segments,
                                  GemmOutput output, Tensor* squares) {
  const char* op = "k_grouped_gemm_tn_contiguous (segments)";
  if (squares) {
    require_dtype(op, "squares", *squares, {DType::F64});
    require_same_device(op, "squares", *squares, dw, "dw");
    if (squares->numel() != 1)
      throw Error(std::string(op) + ": squares is " + squares->describe() + "; it must hold one value");
  }
#ifdef MOEBENCH_WITH_CUDA
  if (dw.device().is_cuda() && grouped_gemm_backend() == GroupedGemmBackend::kSm90) {
    require_dtype(op, "dw", dw, {DType::F32});
    std::vector<cuda::KGroupedSegment> raw;
    for (const WeightGradientSegment& segment : segments) {
      const GroupedDims d = grouped_dims(op, segment.dout, "dout", 1, segment.a, "a", dw, "dw", segment.group_counts);
      require_same_device(op, "dout", segment.dout, dw, "dw");
      raw.push_back({bf16_ptr(segment.dout), bf16_ptr(segment.a), segment.group_counts.data<int32_t>(), d.capacity});
    }
    return cuda::k_grouped_bf16_gemm_tn_contiguous_sm90(dw.data<float>(), raw.data(), int(raw.size()),
                                                        output == GemmOutput::kAccumulate, dw.size(0), dw.size(1),
                                                        dw.size(2), squares ? squares->data<double>() : nullptr,
                                                        current_stream());
  }
#endif
  // The other paths add one segment at a time, then read dw for the squares.
  if (output == GemmOutput::kOverwrite) zero_(dw);
  for (const WeightGradientSegment& segment : segments)
    k_grouped_gemm_tn_contiguous(dw, segment.dout, segment.a, segment.group_counts);
  if (squares) accumulate_sum_of_squares(*squares, dw);
}

}  // namespace moebench::ops
