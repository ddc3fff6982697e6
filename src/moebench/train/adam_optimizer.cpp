#include "moebench/train/adam_optimizer.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "moebench/ckpt/tensor_parallel_pieces.h"
#include "moebench/core/device_transfer.h"
#include "moebench/core/error.h"
#include "moebench/ops/elementwise.h"
#include "moebench/train/parameter_check.h"

namespace moebench::train {

AdamOptimizer::AdamOptimizer(std::vector<model::Parameter*> parameters, const AdamOptions& options,
                             const dist::ParallelState* parallel_state)
    : parameters_(std::move(parameters)), options_(options), parallel_state_(parallel_state) {
  on_device_ = !parameters_.empty() && parameters_.front()->value.defined() &&
               parameters_.front()->value.device().is_cuda();
  if (on_device_) {
    std::vector<ops::AdamTensors> decayed, not_decayed;
    for (model::Parameter* p : parameters_) {
      if (!p->main.defined() || !p->value.device().is_cuda())
        throw Error("AdamOptimizer: parameter '" + p->name + "' is " +
                    (p->value.defined() ? p->value.describe() : "undefined") +
                    " with no fp32 main copy on the device; place the whole model with ModelPlacement::cuda");
      Tensor m = Tensor::empty(p->main.shape(), options_.precision.exp_avg, p->main.device());
      Tensor v = Tensor::empty(p->main.shape(), options_.precision.exp_avg_sq, p->main.device());
      ops::zero_(m);
      ops::zero_(v);
      moments_.push_back({m, v});
      (p->weight_decay ? decayed : not_decayed).push_back({p->main, m, v, p->grad, p->value});
    }
    decayed_ = std::make_unique<ops::MultiTensorAdam>(decayed);
    not_decayed_ = std::make_unique<ops::MultiTensorAdam>(not_decayed);
    return;
  }
  moments_.reserve(parameters_.size());
  for (const model::Parameter* p : parameters_) {
    require_cpu_float32(*p, "AdamOptimizer");
    moments_.push_back({Tensor::zeros(p->value.shape(), options_.precision.exp_avg),
                        Tensor::zeros(p->value.shape(), options_.precision.exp_avg_sq)});
  }
}

double AdamOptimizer::gradient_norm() const {
  const auto squares_of = [this](auto selected) {
    std::vector<const Tensor*> grads;
    std::vector<const void*> known;  // each grad_squares once, however many parameters share it
    double squares = 0.0;
    for (const model::Parameter* p : parameters_) {
      if (!selected(*p)) continue;
      if (!p->grad_squares.defined()) {
        grads.push_back(&p->grad);
      } else if (std::find(known.begin(), known.end(), p->grad_squares.data_ptr()) == known.end()) {
        known.push_back(p->grad_squares.data_ptr());
        squares += to_host(p->grad_squares).data<double>()[0];
      }
    }
    return squares + (grads.empty() ? 0.0 : ops::sum_of_squares(grads));
  };
  dist::Communicator* dense_group = parallel_state_ ? &parallel_state_->group(GroupKind::kModel) : nullptr;
  dist::Communicator* expert_group =
      parallel_state_ ? &parallel_state_->group(GroupKind::kExpertTensorExpertPipeline) : nullptr;
  if (!dense_group || (dense_group->size() == 1 && expert_group->size() == 1))
    return std::sqrt(squares_of([](const model::Parameter&) { return true; }));  // on a GPU: one read-back

  // A dense parameter replicated over tp counts on tp rank 0 only; an expert
  // is never repeated within tp_ep_pp (its replicas are over expt_dp).
  const int tp_rank = parallel_state_->group(GroupKind::kTensor).rank();
  Tensor dense = Tensor::from_vector(std::vector<double>{squares_of([tp_rank](const model::Parameter& p) {
    return !p.is_expert && !model::is_tensor_parallel_duplicate(p, tp_rank);
  })});
  Tensor experts = Tensor::from_vector(std::vector<double>{squares_of([](const model::Parameter& p) { return p.is_expert; })});
  if (dense_group->size() > 1) dense_group->all_reduce(dense, dist::ReduceOp::kSum);
  if (expert_group->size() > 1) expert_group->all_reduce(experts, dist::ReduceOp::kSum);
  return std::sqrt(dense.data<double>()[0] + experts.data<double>()[0]);
}

std::vector<ckpt::ShardedTensor> AdamOptimizer::state_pieces() {
  std::vector<ckpt::ShardedTensor> pieces;
  for (size_t k = 0; k < parameters_.size(); ++k) {
    const model::Parameter& p = *parameters_[k];
    for (const auto& [name, moment] : {std::pair{exp_avg_name(p.name), moments_[k].exp_avg},
                                       {exp_avg_sq_name(p.name), moments_[k].exp_avg_sq}})
      for (ckpt::ShardedTensor& piece : ckpt::tensor_parallel_pieces(name, moment, p.tensor_parallel))
        pieces.push_back(std::move(piece));
  }
  return pieces;
}

OptimizerStep AdamOptimizer::step(double lr) {
  OptimizerStep result;
  result.grad_norm = gradient_norm();
  if (!std::isfinite(result.grad_norm)) return result;

  // Clipping scales each gradient as Adam reads it: the gradients stay as they are.
  const double clip = clip_factor(result.grad_norm, options_.clip_grad);
  ++steps_taken_;
  if (on_device_) {
    decayed_->step(steps_taken_, adam_hyperparams(options_, lr, true, clip));
    not_decayed_->step(steps_taken_, adam_hyperparams(options_, lr, false, clip));
    result.applied = true;
    return result;
  }
  for (size_t k = 0; k < parameters_.size(); ++k) {
    model::Parameter& p = *parameters_[k];
    ops::adamw_step(p.value, moments_[k].exp_avg, moments_[k].exp_avg_sq, p.grad, steps_taken_,
                    adam_hyperparams(options_, lr, p.weight_decay, clip));
  }
  result.applied = true;
  return result;
}

}  // namespace moebench::train
