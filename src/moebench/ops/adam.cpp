#include "moebench/ops/adam.h"

#include <initializer_list>
#include <cstring>
#include <type_traits>

#include "moebench/core/error.h"
#include "moebench/ops/tensor_checks.h"

#ifdef MOEBENCH_WITH_CUDA
#include "moebench/core/device_transfer.h"
#include "moebench/ops/cuda_stream.h"
#endif

namespace moebench::ops {

using namespace checks;

namespace {

// Calls visit(std::type_identity<M>{}, std::type_identity<V>{}) with M and V
// the storage types of moments of dtypes exp_avg and exp_avg_sq: `Bf16` for
// BF16, else `Wide` (the caller has checked that the dtypes are one of the two).
template <typename Wide, typename Bf16, typename Visit>
void visit_moment_types(DType exp_avg, DType exp_avg_sq, Visit&& visit) {
  const auto with_exp_avg_sq = [&](auto exp_avg_type) {
    if (exp_avg_sq == DType::BF16) return visit(exp_avg_type, std::type_identity<Bf16>{});
    visit(exp_avg_type, std::type_identity<Wide>{});
  };
  if (exp_avg == DType::BF16) return with_exp_avg_sq(std::type_identity<Bf16>{});
  with_exp_avg_sq(std::type_identity<Wide>{});
}

}  // namespace

void adamw_step(Tensor& param, Tensor& exp_avg, Tensor& exp_avg_sq, const Tensor& grad, std::int64_t step,
                const AdamHyperparams& hyperparams) {
  const char* op = "adamw_step";
  require_dtype(op, "param", param, {DType::F32, DType::F64});
  for (const Tensor* t : std::initializer_list<const Tensor*>{&param, &exp_avg, &exp_avg_sq, &grad}) {
    require_contiguous(op, "param/exp_avg/exp_avg_sq/grad", *t);
    require_numel(op, "param/exp_avg/exp_avg_sq/grad", *t, param.numel());
    if (t->device().is_cuda())
      unsupported(op, "param/exp_avg/exp_avg_sq/grad", *t, "on the CPU (CUDA parameters use MultiTensorAdam)");
  }
  if (grad.dtype() != param.dtype()) unsupported(op, "grad", grad, "of param's dtype");
  require_dtype(op, "exp_avg", exp_avg, {param.dtype(), DType::BF16});
  require_dtype(op, "exp_avg_sq", exp_avg_sq, {param.dtype(), DType::BF16});
  const auto step_in = [&]<typename T>(std::type_identity<T>) {
    visit_moment_types<T, bfloat16>(exp_avg.dtype(), exp_avg_sq.dtype(),
                                    [&]<typename M, typename V>(std::type_identity<M>, std::type_identity<V>) {
                                      cpu::adamw_step(param.data<T>(), exp_avg.data<M>(), exp_avg_sq.data<V>(),
                                                      grad.data<T>(), param.numel(), step, hyperparams);
                                    });
  };
  if (param.dtype() == DType::F32) return step_in(std::type_identity<float>{});
  step_in(std::type_identity<double>{});
}

MultiTensorAdam::MultiTensorAdam(const std::vector<AdamTensors>& tensors) {
  const char* op = "MultiTensorAdam";
  if (tensors.empty()) return;
#ifdef MOEBENCH_WITH_CUDA
  const AdamTensors& first = tensors.front();
  exp_avg_dtype_ = first.exp_avg.dtype();
  exp_avg_sq_dtype_ = first.exp_avg_sq.dtype();
  for (const AdamTensors& t : tensors) {
    for (const Tensor* f : std::initializer_list<const Tensor*>{&t.main_param, &t.exp_avg, &t.exp_avg_sq, &t.grad}) {
      require_contiguous(op, "main_param/exp_avg/exp_avg_sq/grad", *f);
      require_numel(op, "main_param/exp_avg/exp_avg_sq/grad", *f, t.main_param.numel());
      require_same_device(op, "main_param/exp_avg/exp_avg_sq/grad", *f, first.main_param, "the first main_param");
      if (!f->device().is_cuda()) unsupported(op, "main_param", *f, "on a CUDA device");
    }
    require_dtype(op, "main_param/grad", t.main_param, {DType::F32});
    require_dtype(op, "main_param/grad", t.grad, {DType::F32});
    require_dtype(op, "exp_avg", t.exp_avg, {DType::F32, DType::BF16});
    require_dtype(op, "exp_avg_sq", t.exp_avg_sq, {DType::F32, DType::BF16});
    if (t.exp_avg.dtype() != exp_avg_dtype_ || t.exp_avg_sq.dtype() != exp_avg_sq_dtype_)
      unsupported(op, "exp_avg/exp_avg_sq", t.exp_avg.dtype() != exp_avg_dtype_ ? t.exp_avg : t.exp_avg_sq,
                  "of the first tensor's moment dtypes (one launch updates moments of one kind)");
    if (t.model_param.defined()) {
      require_contiguous(op, "model_param", t.model_param);
      require_dtype(op, "model_param", t.model_param, {DType::BF16});
      require_numel(op, "model_param", t.model_param, t.main_param.numel());
    }
  }
  visit_moment_types<float, __nv_bfloat16>(
      exp_avg_dtype_, exp_avg_sq_dtype_, [&]<typename M, typename V>(std::type_identity<M>, std::type_identity<V>) {
        std::vector<cuda::AdamTensorOf<M, V>> raw;
        for (const AdamTensors& t : tensors)
          raw.push_back({t.main_param.data<float>(), static_cast<M*>(t.exp_avg.data_ptr()),
                         static_cast<V*>(t.exp_avg_sq.data_ptr()), t.grad.data<float>(),
                         t.model_param.defined() ? bf16_ptr(t.model_param) : nullptr, t.main_param.numel()});
        const std::vector<cuda::AdamTensorOf<M, V>> chunks = cuda::split_into_adam_chunks(raw);
        num_chunks_ = int64_t(chunks.size());
        const int64_t bytes = num_chunks_ * int64_t(sizeof(cuda::AdamTensorOf<M, V>));
        Tensor host = Tensor::empty({(bytes + 7) / 8}, DType::I64);
        std::memcpy(host.data_ptr(), chunks.data(), size_t(bytes));
        chunks_ = to_device(host, first.main_param.device());
      });
#else
  throw Error(std::string("ops::") + op + ": this moebench was built without CUDA; use adamw_step on the CPU");
#endif
}

void MultiTensorAdam::step(std::int64_t step, const AdamHyperparams& hyperparams) const {
  if (num_chunks_ == 0) return;
#ifdef MOEBENCH_WITH_CUDA
  visit_moment_types<float, __nv_bfloat16>(
      exp_avg_dtype_, exp_avg_sq_dtype_, [&]<typename M, typename V>(std::type_identity<M>, std::type_identity<V>) {
        cuda::adamw_step(static_cast<const cuda::AdamTensorOf<M, V>*>(chunks_.data_ptr()), num_chunks_, step,
                         hyperparams, current_stream());
      });
#else
  (void)step;
  (void)hyperparams;
#endif
}

}  // namespace moebench::ops
