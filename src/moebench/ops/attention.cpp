#include "moebench/ops/attention.h"

#include <cstdlib>
#include <initializer_list>
#include <string>

#include "moebench/core/error.h"
#include "moebench/ops/tensor_checks.h"

#ifdef MOEBENCH_WITH_CUDA
#include "moebench/ops/cuda_stream.h"
#endif

namespace moebench::ops {

using namespace checks;

namespace {

void check_attention(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                     const Tensor& lse, const AttentionShape& s) {
  for (const Tensor* t : std::initializer_list<const Tensor*>{&q, &k, &v, &out}) {
    require_activation(op, "q/k/v/out", *t);
    require_same_device(op, "q/k/v/out", *t, q, "q");
  }
  require_contiguous(op, "lse", lse);
  require_same_device(op, "lse", lse, q, "q");
  require_numel(op, "q", q, s.batch * s.seq * s.q_heads * s.qk_head_dim);
  require_numel(op, "k", k, s.batch * s.seq * s.kv_heads * s.qk_head_dim);
  require_numel(op, "v", v, s.batch * s.seq * s.kv_heads * s.v_head_dim);
  require_numel(op, "out", out, s.batch * s.seq * s.q_heads * s.v_head_dim);
  require_numel(op, "lse", lse, s.batch * s.q_heads * s.seq);
}

#ifdef MOEBENCH_WITH_CUDA
// The Hopper kernels (sm_90a) run head dims 128/128 and 192/128 on Hopper;
// everything else takes v1. MOEBENCH_ATTENTION=v1 forces v1, and
// MOEBENCH_ATTENTION=sm90-forward uses the Hopper kernel for the forward only.
bool use_hopper_attention(const AttentionShape& shape, const char* pass) {
  static const std::string choice = [] {
    const char* value = std::getenv("MOEBENCH_ATTENTION");
    const std::string text = value ? value : "sm90";
    if (text != "sm90" && text != "sm90-forward" && text != "v1")
      throw Error("MOEBENCH_ATTENTION='" + text + "' is not an attention kernel; use sm90, sm90-forward or v1");
    return text;
  }();
  const bool dims = (shape.qk_head_dim == 128 || shape.qk_head_dim == 192) && shape.v_head_dim == 128;
  if (!dims || !current_device_is_hopper() || choice == "v1") return false;
  return choice == "sm90" || std::string(pass) == "forward";
}
#endif

}  // namespace

void causal_attention_forward(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                              const AttentionShape& shape, std::optional<double> softmax_scale) {
  const char* op = "causal_attention_forward";
  check_attention(op, q, k, v, out, lse, shape);
  if (is_cuda(op, q)) {
#ifdef MOEBENCH_WITH_CUDA
    require_dtype(op, "lse", lse, {DType::F32});
    if (use_hopper_attention(shape, "forward"))
      return cuda::causal_attention_forward_sm90(bf16_ptr(out), lse.data<float>(), bf16_ptr(q), bf16_ptr(k),
                                                 bf16_ptr(v), shape, softmax_scale, current_stream());
    return cuda::causal_attention_forward(bf16_ptr(out), lse.data<float>(), bf16_ptr(q), bf16_ptr(k), bf16_ptr(v),
                                          shape, softmax_scale, current_stream());
#endif
  }
  if (q.dtype() == DType::F32)
    return cpu::causal_attention_forward(out.data<float>(), lse.data<float>(), q.data<float>(), k.data<float>(),
                                         v.data<float>(), shape, softmax_scale);
  cpu::causal_attention_forward(out.data<double>(), lse.data<double>(), q.data<double>(), k.data<double>(),
                                v.data<double>(), shape, softmax_scale);
}

void causal_attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                               const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                               const AttentionShape& shape, std::optional<double> softmax_scale) {
  const char* op = "causal_attention_backward";
  check_attention(op, q, k, v, out, lse, shape);
  check_attention(op, dq, dk, dv, dout, lse, shape);
  require_same_device(op, "dq", dq, q, "q");
  if (is_cuda(op, q)) {
#ifdef MOEBENCH_WITH_CUDA
    require_dtype(op, "lse", lse, {DType::F32});
    const int64_t bytes = int64_t(cuda::causal_attention_backward_workspace_bytes(shape));
    Tensor workspace = Tensor::empty({(bytes + 7) / 8}, DType::I64, q.device());
    if (use_hopper_attention(shape, "backward"))
      return cuda::causal_attention_backward_sm90(bf16_ptr(dq), bf16_ptr(dk), bf16_ptr(dv), bf16_ptr(dout),
                                                  bf16_ptr(q), bf16_ptr(k), bf16_ptr(v), bf16_ptr(out),
                                                  lse.data<float>(), workspace.data_ptr(), shape, softmax_scale,
                                                  current_stream());
    return cuda::causal_attention_backward(bf16_ptr(dq), bf16_ptr(dk), bf16_ptr(dv), bf16_ptr(dout), bf16_ptr(q),
                                           bf16_ptr(k), bf16_ptr(v), bf16_ptr(out), lse.data<float>(),
                                           workspace.data_ptr(), shape, softmax_scale, current_stream());
#endif
  }
  if (q.dtype() == DType::F32)
    return cpu::causal_attention_backward(dq.data<float>(), dk.data<float>(), dv.data<float>(), dout.data<float>(),
                                          q.data<float>(), k.data<float>(), v.data<float>(), out.data<float>(),
                                          lse.data<float>(), shape, softmax_scale);
  cpu::causal_attention_backward(dq.data<double>(), dk.data<double>(), dv.data<double>(), dout.data<double>(),
                                 q.data<double>(), k.data<double>(), v.data<double>(), out.data<double>(),
                                 lse.data<double>(), shape, softmax_scale);
}

}  // namespace moebench::ops
