#include "moebench/model/moe/token_dispatcher.h"

#include "moebench/ops/elementwise.h"

namespace moebench::model {

Tensor SingleRankTokenDispatcher::dispatch_preprocess(const Tensor& hidden, const Routing& routing,
                                                      Handle& handle) const {
  handle.tokens = hidden.size(0);
  handle.hidden = hidden.size(1);
  handle.topk = routing.routing_map.size(1);
  handle.probs = routing.probs;
  handle.map = ops::sort_slots_by_expert(routing.routing_map, num_experts_);
  handle.rows = handle.map.rows;
  handle.tokens_per_expert.clear();
  if (handle.map.tokens_per_expert.device().is_cpu()) {
    const int64_t* counts = handle.map.tokens_per_expert.data<int64_t>();
    handle.tokens_per_expert.assign(counts, counts + num_experts_);
  }
  handle.group_counts = ops::cast(handle.map.tokens_per_expert, DType::I32);
  Tensor permuted = ops::empty_like(hidden, {handle.rows, handle.hidden});
  ops::permute_forward(permuted, hidden, handle.map);
  return permuted;
}

Tensor SingleRankTokenDispatcher::combine_postprocess(const Tensor& expert_out, Handle& handle,
                                                      const Tensor& residual) const {
  handle.expert_out = expert_out;
  Tensor out = ops::empty_like(expert_out, {handle.tokens, handle.hidden});
  ops::unpermute_forward(out, expert_out, handle.probs, handle.map, residual);
  return out;
}

Tensor SingleRankTokenDispatcher::dispatch(const Tensor& hidden, const Routing& routing,
                                           Handle& handle) const {
  return dispatch_postprocess(token_dispatch(dispatch_preprocess(hidden, routing, handle)));
}

Tensor SingleRankTokenDispatcher::combine(const Tensor& expert_out, Handle& handle, const Tensor& residual) const {
  return combine_postprocess(token_combine(combine_preprocess(expert_out)), handle, residual);
}

Tensor SingleRankTokenDispatcher::combine_backward(const Tensor& dout, const Handle& handle,
                                                   Tensor& dprobs) const {
  Tensor dexpert_out = ops::empty_like(dout, {handle.rows, handle.hidden});
  dprobs = ops::empty_like(handle.probs, {handle.tokens, handle.topk});
  ops::unpermute_backward(dexpert_out, dprobs, dout, handle.expert_out, handle.probs, handle.map);
  return dexpert_out;
}

Tensor SingleRankTokenDispatcher::dispatch_backward(const Tensor& dpermuted,
                                                    const Handle& handle) const {
  Tensor dhidden = ops::empty_like(dpermuted, {handle.tokens, handle.hidden});
  ops::permute_backward(dhidden, dpermuted, handle.map);
  return dhidden;
}

}  // namespace moebench::model
