#include "moebench/ops/permute.h"

#include "moebench/core/error.h"
#include "moebench/ops/elementwise.h"
#include "moebench/ops/tensor_checks.h"

#ifdef MOEBENCH_WITH_CUDA
#include "moebench/ops/cuda_stream.h"
#endif

namespace moebench::ops {
namespace {

using namespace checks;

int64_t hidden_of(const char* op, const char* name, const Tensor& rows_tensor, int64_t rows) {
  require_activation(op, name, rows_tensor);
  if (rows_tensor.dim() != 2) unsupported(op, name, rows_tensor, "[rows, hidden]");
  if (rows_tensor.size(0) != rows)
    unsupported(op, name, rows_tensor, ("[" + std::to_string(rows) + ", hidden]").c_str());
  return rows_tensor.size(1);
}

void check_probs(const char* op, const char* name, const Tensor& probs, const Tensor& like, const PermuteMap& map) {
  require_contiguous(op, name, probs);
  require_same_device(op, name, probs, like, "the activations");
  require_numel(op, name, probs, map.tokens * map.topk);
  if (probs.device().is_cuda()) require_dtype(op, name, probs, {DType::F32});
  else if (probs.dtype() != like.dtype()) unsupported(op, name, probs, "of the activations' dtype on the CPU");
}

}  // namespace

PermuteMap sort_slots_by_expert(const Tensor& routing_map, std::int64_t num_experts) {
  const char* op = "sort_slots_by_expert";
  require_contiguous(op, "routing_map", routing_map);
  require_dtype(op, "routing_map", routing_map, {DType::I64});
  if (routing_map.dim() != 2) unsupported(op, "routing_map", routing_map, "[tokens, topk]");
  PermuteMap map;
  map.tokens = routing_map.size(0);
  map.topk = routing_map.size(1);
  map.num_experts = num_experts;
  const Device device = routing_map.device();
  map.row_id_map = Tensor::empty({map.tokens * map.topk}, DType::I64, device);
  map.tokens_per_expert = Tensor::empty({num_experts}, DType::I64, device);
  zero_(map.tokens_per_expert);
  if (is_cuda(op, routing_map)) {
#ifdef MOEBENCH_WITH_CUDA
    map.row_of_slot = Tensor::empty({map.tokens * map.topk}, DType::I64, device);
    map.rows = map.tokens * map.topk;
    cuda::sort_slots_by_expert(map.row_id_map.data<int64_t>(), map.row_of_slot.data<int64_t>(),
                               map.tokens_per_expert.data<int64_t>(), routing_map.data<int64_t>(), map.tokens,
                               map.topk, num_experts, current_stream());
    return map;
#endif
  }
  map.rows = cpu::sort_slots_by_expert(map.row_id_map.data<int64_t>(), map.tokens_per_expert.data<int64_t>(),
                                       routing_map.data<int64_t>(), map.tokens, map.topk, num_experts);
  return map;
}

void permute_forward(Tensor& permuted, const Tensor& input, const PermuteMap& map) {
  const char* op = "permute_forward";
  const int64_t hidden = hidden_of(op, "input", input, map.tokens);
  hidden_of(op, "permuted", permuted, map.rows);
  require_same_device(op, "permuted", permuted, input, "input");
  if (is_cuda(op, input)) {
#ifdef MOEBENCH_WITH_CUDA
    return cuda::permute_forward(bf16_ptr(permuted), bf16_ptr(input), map.row_of_slot.data<int64_t>(), map.tokens,
                                 map.topk, hidden, current_stream());
#endif
  }
  if (input.dtype() == DType::F32)
    return cpu::permute_forward(permuted.data<float>(), input.data<float>(), map.row_id_map.data<int64_t>(),
                                map.rows, map.tokens, map.topk, hidden);
  cpu::permute_forward(permuted.data<double>(), input.data<double>(), map.row_id_map.data<int64_t>(), map.rows,
                       map.tokens, map.topk, hidden);
}

void permute_backward(Tensor& dinput, const Tensor& dpermuted, const PermuteMap& map) {
  const char* op = "permute_backward";
  const int64_t hidden = hidden_of(op, "dinput", dinput, map.tokens);
  hidden_of(op, "dpermuted", dpermuted, map.rows);
  require_same_device(op, "dpermuted", dpermuted, dinput, "dinput");
  if (is_cuda(op, dinput)) {
#ifdef MOEBENCH_WITH_CUDA
    return cuda::permute_backward(bf16_ptr(dinput), bf16_ptr(dpermuted), map.row_of_slot.data<int64_t>(), map.tokens,
                                  map.topk, hidden, current_stream());
#endif
  }
  if (dinput.dtype() == DType::F32)
    return cpu::permute_backward(dinput.data<float>(), dpermuted.data<float>(), map.row_id_map.data<int64_t>(),
                                 map.rows, map.tokens, map.topk, hidden);
  cpu::permute_backward(dinput.data<double>(), dpermuted.data<double>(), map.row_id_map.data<int64_t>(), map.rows,
                        map.tokens, map.topk, hidden);
}

void unpermute_forward(Tensor& out, const Tensor& expert_out, const Tensor& probs, const PermuteMap& map,
                       const Tensor& residual) {
  const char* op = "unpermute_forward";
  const int64_t hidden = hidden_of(op, "out", out, map.tokens);
  hidden_of(op, "expert_out", expert_out, map.rows);
  require_same_device(op, "expert_out", expert_out, out, "out");
  check_probs(op, "probs", probs, out, map);
  if (residual.defined()) {
    hidden_of(op, "residual", residual, map.tokens);
    require_same_device(op, "residual", residual, out, "out");
    require_dtype(op, "residual", residual, {out.dtype()});
    if (residual.data_ptr() == out.data_ptr())
      throw Error("ops::unpermute_forward: residual and out are one buffer; pass a separate out");
  }
  if (is_cuda(op, out)) {
#ifdef MOEBENCH_WITH_CUDA
    return cuda::unpermute_forward(bf16_ptr(out), bf16_ptr(expert_out), probs.data<float>(),
                                   map.row_of_slot.data<int64_t>(), residual.defined() ? bf16_ptr(residual) : nullptr,
                                   map.tokens, map.topk, hidden, current_stream());
#endif
  }
  if (out.dtype() == DType::F32)
    cpu::unpermute_forward(out.data<float>(), expert_out.data<float>(), probs.data<float>(),
                           map.row_id_map.data<int64_t>(), map.rows, map.tokens, map.topk, hidden);
  else
    cpu::unpermute_forward(out.data<double>(), expert_out.data<double>(), probs.data<double>(),
                           map.row_id_map.data<int64_t>(), map.rows, map.tokens, map.topk, hidden);
  if (residual.defined()) add_(out, residual);
}

void unpermute_backward(Tensor& dexpert_out, Tensor& dprobs, const Tensor& dout, const Tensor& expert_out,
                        const Tensor& probs, const PermuteMap& map) {
  const char* op = "unpermute_backward";
  const int64_t hidden = hidden_of(op, "dout", dout, map.tokens);
  hidden_of(op, "expert_out", expert_out, map.rows);
  hidden_of(op, "dexpert_out", dexpert_out, map.rows);
  require_same_device(op, "expert_out", expert_out, dout, "dout");
  require_same_device(op, "dexpert_out", dexpert_out, dout, "dout");
  check_probs(op, "probs", probs, dout, map);
  check_probs(op, "dprobs", dprobs, dout, map);
  if (is_cuda(op, dout)) {
#ifdef MOEBENCH_WITH_CUDA
    return cuda::unpermute_backward(bf16_ptr(dexpert_out), dprobs.data<float>(), bf16_ptr(dout),
                                    bf16_ptr(expert_out), probs.data<float>(), map.row_of_slot.data<int64_t>(),
                                    map.tokens, map.topk, hidden, current_stream());
#endif
  }
  if (dout.dtype() == DType::F32)
    return cpu::unpermute_backward(dexpert_out.data<float>(), dprobs.data<float>(), dout.data<float>(),
                                   expert_out.data<float>(), probs.data<float>(), map.row_id_map.data<int64_t>(),
                                   map.rows, map.tokens, map.topk, hidden);
  cpu::unpermute_backward(dexpert_out.data<double>(), dprobs.data<double>(), dout.data<double>(),
                          expert_out.data<double>(), probs.data<double>(), map.row_id_map.data<int64_t>(), map.rows,
                          map.tokens, map.topk, hidden);
}

}  // namespace moebench::ops
