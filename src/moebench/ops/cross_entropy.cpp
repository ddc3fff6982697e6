#include "moebench/ops/cross_entropy.h"

#include <initializer_list>

#include "moebench/ops/tensor_checks.h"

#ifdef MOEBENCH_WITH_CUDA
#include "moebench/ops/cuda_stream.h"
#endif

namespace moebench::ops {

using namespace checks;

void cross_entropy_forward(Tensor& losses, Tensor& logsumexp, const Tensor& logits, const Tensor& labels,
                           int64_t vocab) {
  const char* op = "cross_entropy_forward";
  require_activation(op, "logits", logits);
  require_contiguous(op, "labels", labels);
  require_dtype(op, "labels", labels, {DType::I64});
  require_contiguous(op, "losses", losses);
  require_same_device(op, "labels", labels, logits, "logits");
  require_same_device(op, "losses", losses, logits, "logits");
  const int64_t n = labels.numel(), padded = n > 0 ? logits.numel() / n : 0;
  require_numel(op, "logits", logits, n * padded);
  require_numel(op, "losses", losses, n);
  if (is_cuda(op, logits)) {
#ifdef MOEBENCH_WITH_CUDA
    require_dtype(op, "losses", losses, {DType::F32});
    require_contiguous(op, "logsumexp", logsumexp);
    require_dtype(op, "logsumexp", logsumexp, {DType::F32});
    require_numel(op, "logsumexp", logsumexp, n);
    return cuda::cross_entropy_forward(losses.data<float>(), logsumexp.data<float>(), bf16_ptr(logits),
                                       labels.data<int64_t>(), n, vocab, padded, current_stream());
#endif
  }
  (void)logsumexp;  // the CPU recomputes it in the backward
  if (logits.dtype() == DType::F32)
    return cpu::cross_entropy_forward(losses.data<float>(), logits.data<float>(), labels.data<int64_t>(), n, vocab,
                                      padded);
  cpu::cross_entropy_forward(losses.data<double>(), logits.data<double>(), labels.data<int64_t>(), n, vocab, padded);
}

void cross_entropy_backward(Tensor& dlogits, const Tensor& dlosses, const Tensor& logits, const Tensor& labels,
                            const Tensor& logsumexp, int64_t vocab) {
  const char* op = "cross_entropy_backward";
  require_activation(op, "logits", logits);
  require_activation(op, "dlogits", dlogits);
  require_contiguous(op, "labels", labels);
  require_dtype(op, "labels", labels, {DType::I64});
  require_contiguous(op, "dlosses", dlosses);
  for (const Tensor* t : std::initializer_list<const Tensor*>{&dlogits, &labels, &dlosses}) require_same_device(op, "dlogits/labels/dlosses", *t, logits, "logits");
  const int64_t n = labels.numel(), padded = n > 0 ? logits.numel() / n : 0;
  require_numel(op, "dlogits", dlogits, logits.numel());
  require_numel(op, "dlosses", dlosses, n);
  if (is_cuda(op, logits)) {
#ifdef MOEBENCH_WITH_CUDA
    require_dtype(op, "dlosses", dlosses, {DType::F32});
    require_dtype(op, "logsumexp", logsumexp, {DType::F32});
    require_numel(op, "logsumexp", logsumexp, n);
    return cuda::cross_entropy_backward(bf16_ptr(dlogits), dlosses.data<float>(), bf16_ptr(logits),
                                        labels.data<int64_t>(), logsumexp.data<float>(), n, vocab, padded,
                                        current_stream());
#endif
  }
  (void)logsumexp;
  if (logits.dtype() == DType::F32)
    return cpu::cross_entropy_backward(dlogits.data<float>(), dlosses.data<float>(), logits.data<float>(),
                                       labels.data<int64_t>(), n, vocab, padded);
  cpu::cross_entropy_backward(dlogits.data<double>(), dlosses.data<double>(), logits.data<double>(),
                              labels.data<int64_t>(), n, vocab, padded);
}

void masked_mean_forward(Tensor& mean, const Tensor& losses, const Tensor& loss_mask) {
  const char* op = "masked_mean_forward";
  require_contiguous(op, "losses", losses);
  require_contiguous(op, "mean", mean);
  require_numel(op, "mean", mean, 1);
  require_same_device(op, "mean", mean, losses, "losses");
  const int64_t n = losses.numel();
  if (loss_mask.defined()) {
    require_contiguous(op, "loss_mask", loss_mask);
    require_same_device(op, "loss_mask", loss_mask, losses, "losses");
    require_numel(op, "loss_mask", loss_mask, n);
  }
  if (is_cuda(op, losses)) {
#ifdef MOEBENCH_WITH_CUDA
    require_dtype(op, "losses", losses, {DType::F32});
    if (loss_mask.defined()) require_dtype(op, "loss_mask", loss_mask, {DType::F32});
    return cuda::masked_mean_forward(mean.data<float>(), losses.data<float>(),
                                     loss_mask.defined() ? loss_mask.data<float>() : nullptr, n, current_stream());
#endif
  }
  if (losses.dtype() == DType::F32) {
    mean.data<float>()[0] =
        cpu::masked_mean_forward(losses.data<float>(), loss_mask.defined() ? loss_mask.data<float>() : nullptr, n);
    return;
  }
  mean.data<double>()[0] =
      cpu::masked_mean_forward(losses.data<double>(), loss_mask.defined() ? loss_mask.data<double>() : nullptr, n);
}

void masked_mean_backward(Tensor& dlosses, double dmean, const Tensor& loss_mask) {
  const char* op = "masked_mean_backward";
  require_contiguous(op, "dlosses", dlosses);
  const int64_t n = dlosses.numel();
  if (loss_mask.defined()) {
    require_contiguous(op, "loss_mask", loss_mask);
    require_same_device(op, "loss_mask", loss_mask, dlosses, "dlosses");
    require_numel(op, "loss_mask", loss_mask, n);
  }
  if (is_cuda(op, dlosses)) {
#ifdef MOEBENCH_WITH_CUDA
    require_dtype(op, "dlosses", dlosses, {DType::F32});
    return cuda::masked_mean_backward(dlosses.data<float>(), float(dmean),
                                      loss_mask.defined() ? loss_mask.data<float>() : nullptr, n, current_stream());
#endif
  }
  if (dlosses.dtype() == DType::F32)
    return cpu::masked_mean_backward(dlosses.data<float>(), float(dmean),
                                     loss_mask.defined() ? loss_mask.data<float>() : nullptr, n);
  cpu::masked_mean_backward(dlosses.data<double>(), dmean, loss_mask.defined() ? loss_mask.data<double>() : nullptr,
                            n);
}

}  // namespace moebench::ops
