#include "moebench/model/moe/allgather_token_dispatcher.h"

#include <string>

#include "moebench/core/error.h"
#include "moebench/model/moe/dispatch_arguments.h"
#include "moebench/ops/elementwise.h"
#include "moebench/ops/permute.h"

namespace moebench::model {
namespace {

constexpr int64_t kNotLocal = -1;  // a dropped slot to the local sort

std::vector<int64_t> with_leading(int64_t leading, const Tensor& tensor) {
  std::vector<int64_t> shape = tensor.shape();
  shape[0] = leading;
  return shape;
}

}  // namespace

AllGatherTokenDispatcher::AllGatherTokenDispatcher(int64_t num_experts,
                                                   const dist::ParallelState& parallel_state)
    : num_experts_(num_experts),
      token_group_(&parallel_state.group(GroupKind::kExpertTensorAndExpert)) {
  const dist::Communicator& ep_group = parallel_state.group(GroupKind::kExpert);
  if (num_experts <= 0 || num_experts % ep_group.size() != 0)
    throw Error("AllGatherTokenDispatcher: num_experts " + std::to_string(num_experts) +
                " must be a positive multiple of the expert-parallel size " +
                std::to_string(ep_group.size()) +
                "; check --num-experts and --expert-model-parallel-size");
  num_local_experts_ = num_experts / ep_group.size();
  first_local_expert_ = ep_group.rank() * num_local_experts_;
}

Tensor AllGatherTokenDispatcher::gather(const Tensor& local) const {
  Tensor gathered =
      Tensor::empty(with_leading(token_group_->size() * local.size(0), local), local.dtype());
  token_group_->all_gather(local, gathered);
  return gathered;
}

Tensor AllGatherTokenDispatcher::reduce_scatter(const Tensor& gathered) const {
  Tensor local = Tensor::empty(with_leading(gathered.size(0) / token_group_->size(), gathered),
                               gathered.dtype());
  token_group_->reduce_scatter(gathered, local, dist::ReduceOp::kSum);
  return local;
}

Tensor AllGatherTokenDispatcher::dispatch_preprocess(const Tensor& hidden, const Routing& routing,
                                                     Handle& handle) const {
  check_dispatch_inputs("AllGatherTokenDispatcher::dispatch_preprocess", hidden, routing);
  handle = Handle{};
  handle.tokens = hidden.size(0);
  handle.hidden = hidden.size(1);
  handle.topk = routing.routing_map.size(1);
  handle.gathered_tokens = token_group_->size() * handle.tokens;
  handle.routing = routing;
  return hidden;
}

Tensor AllGatherTokenDispatcher::token_dispatch(const Tensor& hidden, Handle& handle) const {
  check_rows("AllGatherTokenDispatcher::token_dispatch", "hidden", hidden, handle.tokens,
             handle.hidden);
  handle.gathered_routing_map = gather(handle.routing.routing_map);
  handle.gathered_probs = gather(handle.routing.probs);
  return gather(hidden);
}

Tensor AllGatherTokenDispatcher::dispatch_postprocess(const Tensor& gathered,
                                                      Handle& handle) const {
  check_rows("AllGatherTokenDispatcher::dispatch_postprocess", "gathered", gathered,
             handle.gathered_tokens, handle.hidden);
  const int64_t slots = handle.gathered_tokens * handle.topk;
  // Slots of other ranks' experts look dropped to the sort, which then
  // numbers local experts from 0.
  std::vector<int64_t> local_map(slots);
  const int64_t* map = handle.gathered_routing_map.data<int64_t>();
  for (int64_t s = 0; s < slots; ++s) {
    const int64_t local = map[s] - first_local_expert_;
    local_map[s] = local >= 0 && local < num_local_experts_ ? local : kNotLocal;
  }
  handle.row_id_map = Tensor::empty({slots}, DType::I64);
  handle.tokens_per_local_expert.assign(num_local_experts_, 0);
  handle.rows = ops::cpu::sort_slots_by_expert(
      handle.row_id_map.data<int64_t>(), handle.tokens_per_local_expert.data(), local_map.data(),
      handle.gathered_tokens, handle.topk, num_local_experts_);
  Tensor expert_in = Tensor::empty({handle.rows, handle.hidden}, DType::F32);
  ops::cpu::permute_forward(expert_in.data<float>(), gathered.data<float>(),
                            handle.row_id_map.data<int64_t>(), handle.rows, handle.gathered_tokens,
                            handle.topk, handle.hidden);
  return expert_in;
}

Tensor AllGatherTokenDispatcher::combine_preprocess(const Tensor& expert_out,
                                                    Handle& handle) const {
  check_rows("AllGatherTokenDispatcher::combine_preprocess", "expert_out", expert_out, handle.rows,
             handle.hidden);
  handle.expert_out = expert_out;
  Tensor gathered_share = Tensor::empty({handle.gathered_tokens, handle.hidden}, DType::F32);
  ops::cpu::unpermute_forward(gathered_share.data<float>(), expert_out.data<float>(),
                              handle.gathered_probs.data<float>(),
                              handle.row_id_map.data<int64_t>(), handle.rows,
                              handle.gathered_tokens, handle.topk, handle.hidden);
  return gathered_share;
}

Tensor AllGatherTokenDispatcher::token_combine(const Tensor& gathered_share,
                                               const Handle& handle) const {
  check_rows("AllGatherTokenDispatcher::token_combine", "gathered_share", gathered_share,
             handle.gathered_tokens, handle.hidden);
  return reduce_scatter(gathered_share);
}

Tensor AllGatherTokenDispatcher::combine_postprocess(const Tensor& out,
                                                     const Handle& handle) const {
  check_rows("AllGatherTokenDispatcher::combine_postprocess", "out", out, handle.tokens,
             handle.hidden);
  return out;
}

Tensor AllGatherTokenDispatcher::dispatch(const Tensor& hidden, const Routing& routing,
                                          Handle& handle) const {
  return dispatch_postprocess(token_dispatch(dispatch_preprocess(hidden, routing, handle), handle),
                              handle);
}

Tensor AllGatherTokenDispatcher::combine(const Tensor& expert_out, Handle& handle, const Tensor& residual) const {
  Tensor out = combine_postprocess(token_combine(combine_preprocess(expert_out, handle), handle), handle);
  if (residual.defined()) ops::add_(out, residual);
  return out;
}

Tensor AllGatherTokenDispatcher::combine_backward(const Tensor& dout, const Handle& handle,
                                                  Tensor& dprobs) const {
  check_rows("AllGatherTokenDispatcher::combine_backward", "dout", dout, handle.tokens,
             handle.hidden);
  // The adjoint of the reduce-scatter is an all-gather.
  const Tensor gathered_dout = gather(dout);
  Tensor dexpert_out = Tensor::empty({handle.rows, handle.hidden}, DType::F32);
  // Zero for slots of other ranks' experts, so the sum over the group is the full gradient.
  Tensor gathered_dprobs = Tensor::empty({handle.gathered_tokens, handle.topk}, DType::F32);
  ops::cpu::unpermute_backward(dexpert_out.data<float>(), gathered_dprobs.data<float>(),
                               gathered_dout.data<float>(), handle.expert_out.data<float>(),
                               handle.gathered_probs.data<float>(),
                               handle.row_id_map.data<int64_t>(), handle.rows,
                               handle.gathered_tokens, handle.topk, handle.hidden);
  dprobs = reduce_scatter(gathered_dprobs);
  return dexpert_out;
}

Tensor AllGatherTokenDispatcher::dispatch_backward(const Tensor& dexpert_in,
                                                   const Handle& handle) const {
  check_rows("AllGatherTokenDispatcher::dispatch_backward", "dexpert_in", dexpert_in, handle.rows,
             handle.hidden);
  Tensor dgathered = Tensor::empty({handle.gathered_tokens, handle.hidden}, DType::F32);
  ops::cpu::permute_backward(dgathered.data<float>(), dexpert_in.data<float>(),
                             handle.row_id_map.data<int64_t>(), handle.rows, handle.gathered_tokens,
                             handle.topk, handle.hidden);
  // The adjoint of the all-gather is a reduce-scatter.
  return reduce_scatter(dgathered);
}

}  // namespace moebench::model
