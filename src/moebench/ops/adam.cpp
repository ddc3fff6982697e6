#include "moebench/ops/adam.h"

#include <initializer_list>
#include <cstring>

#include "moebench/core/error.h"
#include "moebench/ops/tensor_checks.h"

#ifdef MOEBENCH_WITH_CUDA
#include "moebench/core/device_transfer.h"
#include "moebench/ops/cuda_stream.h"
#endif

namespace moebench::ops {

using namespace checks;

void adamw_step(Tensor& param, Tensor& exp_avg, Tensor& exp_avg_sq, const Tensor& grad, std::int64_t step,
                const AdamHyperparams& hyperparams) {
  const char* op = "adamw_step";
  for (const Tensor* t : std::initializer_list<const Tensor*>{&param, &exp_avg, &exp_avg_sq, &grad}) {
    require_contiguous(op, "param/exp_avg/exp_avg_sq/grad", *t);
    require_numel(op, "param/exp_avg/exp_avg_sq/grad", *t, param.numel());
    if (t->dtype() != param.dtype()) unsupported(op, "exp_avg/exp_avg_sq/grad", *t, "of param's dtype");
    if (t->device().is_cuda())
      unsupported(op, "param/exp_avg/exp_avg_sq/grad", *t, "on the CPU (CUDA parameters use MultiTensorAdam)");
  }
  if (param.dtype() == DType::F32)
    return cpu::adamw_step(param.data<float>(), exp_avg.data<float>(), exp_avg_sq.data<float>(), grad.data<float>(),
                           param.numel(), step, hyperparams);
  require_dtype(op, "param", param, {DType::F32, DType::F64});
  cpu::adamw_step(param.data<double>(), exp_avg.data<double>(), exp_avg_sq.data<double>(), grad.data<double>(),
                  param.numel(), step, hyperparams);
}

MultiTensorAdam::MultiTensorAdam(const std::vector<AdamTensors>& tensors) {
  const char* op = "MultiTensorAdam";
  if (tensors.empty()) return;
#ifdef MOEBENCH_WITH_CUDA
  std::vector<cuda::AdamTensor> raw;
  const Tensor& first = tensors.front().main_param;
  for (const AdamTensors& t : tensors) {
    for (const Tensor* f : std::initializer_list<const Tensor*>{&t.main_param, &t.exp_avg, &t.exp_avg_sq, &t.grad}) {
      require_contiguous(op, "main_param/exp_avg/exp_avg_sq/grad", *f);
      require_dtype(op, "main_param/exp_avg/exp_avg_sq/grad", *f, {DType::F32});
      require_numel(op, "main_param/exp_avg/exp_avg_sq/grad", *f, t.main_param.numel());
      require_same_device(op, "main_param/exp_avg/exp_avg_sq/grad", *f, first, "the first main_param");
      if (!f->device().is_cuda()) unsupported(op, "main_param", *f, "on a CUDA device");
    }
    cuda::AdamTensor a;
    a.main_param = t.main_param.data<float>();
    a.exp_avg = t.exp_avg.data<float>();
    a.exp_avg_sq = t.exp_avg_sq.data<float>();
    a.grad = t.grad.data<float>();
    if (t.model_param.defined()) {
      require_contiguous(op, "model_param", t.model_param);
      require_dtype(op, "model_param", t.model_param, {DType::BF16});
      require_numel(op, "model_param", t.model_param, t.main_param.numel());
      a.model_param = bf16_ptr(t.model_param);
    }
    a.numel = t.main_param.numel();
    raw.push_back(a);
  }
  const std::vector<cuda::AdamTensor> chunks = cuda::split_into_adam_chunks(raw);
  num_chunks_ = int64_t(chunks.size());
  const int64_t bytes = num_chunks_ * int64_t(sizeof(cuda::AdamTensor));
  Tensor host = Tensor::empty({(bytes + 7) / 8}, DType::I64);
  std::memcpy(host.data_ptr(), chunks.data(), size_t(bytes));
  chunks_ = to_device(host, first.device());
#else
  throw Error(std::string("ops::") + op + ": this moebench was built without CUDA; use adamw_step on the CPU");
#endif
}

void MultiTensorAdam::step(std::int64_t step, const AdamHyperparams& hyperparams) const {
  if (num_chunks_ == 0) return;
#ifdef MOEBENCH_WITH_CUDA
  cuda::adamw_step(static_cast<const cuda::AdamTensor*>(chunks_.data_ptr()), num_chunks_, step, hyperparams,
                   current_stream());
#else
  (void)step;
  (void)hyperparams;
#endif
}

}  // namespace moebench::ops
