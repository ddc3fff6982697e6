#include "moebench/ops/router.h"

#include <initializer_list>

#include "moebench/core/error.h"
#include "moebench/ops/elementwise.h"
#include "moebench/ops/tensor_checks.h"

#ifdef MOEBENCH_WITH_CUDA
#include "moebench/ops/cuda_stream.h"
#endif

namespace moebench::ops {
namespace {

using namespace checks;

RouterStatistics raw_statistics(const RouterStatisticTensors& s) {
  RouterStatistics raw;
  if (s.aux_counts.defined()) raw.aux_counts = s.aux_counts.data<int32_t>();
  if (s.aux_score_sums.defined()) raw.aux_score_sums = s.aux_score_sums.data<float>();
  if (s.z_loss_sum.defined()) raw.z_loss_sum = s.z_loss_sum.data<float>();
  return raw;
}

}  // namespace

RouterStatisticTensors zero_router_statistics(const RouterConfig& config, std::int64_t sequences, Device device) {
  RouterStatisticTensors s;
  if (config.aux_loss_coeff > 0) {
    s.aux_counts = Tensor::empty({sequences, config.num_experts}, DType::I32, device);
    s.aux_score_sums = Tensor::empty({sequences, config.num_experts}, DType::F32, device);
    zero_(s.aux_counts);
    zero_(s.aux_score_sums);
  }
  if (config.z_loss_coeff > 0) {
    s.z_loss_sum = Tensor::empty({1}, DType::F32, device);
    zero_(s.z_loss_sum);
  }
  return s;
}

void router_forward(Tensor& indices, Tensor& probs, RouterStatisticTensors& statistics, const Tensor& logits,
                    const Tensor& expert_bias, std::int64_t tokens_per_sequence, const RouterConfig& config) {
  const char* op = "router_forward";
  require_contiguous(op, "logits", logits);
  require_dtype(op, "logits", logits, {DType::F32});
  const int64_t tokens = config.num_experts > 0 ? logits.numel() / config.num_experts : 0;
  require_numel(op, "logits", logits, tokens * config.num_experts);
  require_contiguous(op, "indices", indices);
  require_dtype(op, "indices", indices, {DType::I64});
  require_contiguous(op, "probs", probs);
  require_dtype(op, "probs", probs, {DType::F32});
  require_numel(op, "indices", indices, tokens * config.topk);
  require_numel(op, "probs", probs, tokens * config.topk);
  require_same_device(op, "indices", indices, logits, "logits");
  require_same_device(op, "probs", probs, logits, "logits");
  if (expert_bias.defined()) {
    require_dtype(op, "expert_bias", expert_bias, {DType::F32});
    require_same_device(op, "expert_bias", expert_bias, logits, "logits");
    require_numel(op, "expert_bias", expert_bias, config.num_experts);
  }
  const RouterStatistics raw = raw_statistics(statistics);
  check_router_arguments(op, tokens, tokens_per_sequence, config, &raw);
  const float* bias = expert_bias.defined() ? expert_bias.data<float>() : nullptr;
  if (is_cuda(op, logits)) {
#ifdef MOEBENCH_WITH_CUDA
    return cuda::router_forward(indices.data<int64_t>(), probs.data<float>(), raw, logits.data<float>(), bias, tokens,
                                tokens_per_sequence, config, current_stream());
#endif
  }
  cpu::router_forward(indices.data<int64_t>(), probs.data<float>(), raw, logits.data<float>(), bias, tokens,
                      tokens_per_sequence, config);
}

void router_backward(Tensor& dlogits, const Tensor& dprobs, const Tensor& logits, const Tensor& indices,
                     const Tensor& aux_counts, std::int64_t tokens_per_sequence, const RouterConfig& config,
                     float loss_scale) {
  const char* op = "router_backward";
  for (const Tensor* t : std::initializer_list<const Tensor*>{&dlogits, &dprobs, &logits}) {
    require_contiguous(op, "dlogits/dprobs/logits", *t);
    require_dtype(op, "dlogits/dprobs/logits", *t, {DType::F32});
    require_same_device(op, "dlogits/dprobs/logits", *t, logits, "logits");
  }
  const int64_t tokens = config.num_experts > 0 ? logits.numel() / config.num_experts : 0;
  require_numel(op, "dlogits", dlogits, logits.numel());
  require_numel(op, "dprobs", dprobs, tokens * config.topk);
  require_dtype(op, "indices", indices, {DType::I64});
  require_numel(op, "indices", indices, tokens * config.topk);
  if (aux_counts.defined()) require_dtype(op, "aux_counts", aux_counts, {DType::I32});
  check_router_arguments(op, tokens, tokens_per_sequence, config, nullptr);
  const int32_t* counts = aux_counts.defined() ? aux_counts.data<int32_t>() : nullptr;
  if (is_cuda(op, logits)) {
#ifdef MOEBENCH_WITH_CUDA
    return cuda::router_backward(dlogits.data<float>(), dprobs.data<float>(), logits.data<float>(),
                                 indices.data<int64_t>(), counts, tokens, tokens_per_sequence, config, loss_scale,
                                 current_stream());
#endif
  }
  cpu::router_backward(dlogits.data<float>(), dprobs.data<float>(), logits.data<float>(), indices.data<int64_t>(),
                       counts, tokens, tokens_per_sequence, config, loss_scale);
}

void router_auxiliary_loss(Tensor& loss, const RouterStatisticTensors& statistics, std::int64_t tokens,
                           std::int64_t tokens_per_sequence, const RouterConfig& config) {
  const char* op = "router_auxiliary_loss";
  require_contiguous(op, "loss", loss);
  require_numel(op, "loss", loss, 1);
  const RouterStatistics raw = raw_statistics(statistics);
  if (is_cuda(op, loss)) {
#ifdef MOEBENCH_WITH_CUDA
    require_dtype(op, "loss", loss, {DType::F32});
    return cuda::router_auxiliary_loss(loss.data<float>(), raw, tokens, tokens_per_sequence, config,
                                       current_stream());
#endif
  }
  require_dtype(op, "loss", loss, {DType::F32, DType::F64});
  const double value = cpu::router_auxiliary_loss(raw, tokens, tokens_per_sequence, config);
  if (loss.dtype() == DType::F64) loss.data<double>()[0] = value;
  else loss.data<float>()[0] = float(value);
}

}  // namespace moebench::ops
