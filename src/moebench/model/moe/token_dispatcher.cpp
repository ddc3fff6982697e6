#include "moebench/model/moe/token_dispatcher.h"

#include "moebench/ops/permute.h"

namespace moebench::model {

Tensor SingleRankTokenDispatcher::dispatch_preprocess(const Tensor& hidden, const Routing& routing,
                                                      Handle& handle) const {
  handle.tokens = hidden.size(0);
  handle.hidden = hidden.size(1);
  handle.topk = routing.routing_map.size(1);
  handle.probs = routing.probs;
  handle.row_id_map = Tensor::empty({handle.tokens * handle.topk}, DType::I64);
  handle.tokens_per_expert.assign(num_experts_, 0);
  handle.rows = ops::cpu::sort_slots_by_expert(
      handle.row_id_map.data<int64_t>(), handle.tokens_per_expert.data(),
      routing.routing_map.data<int64_t>(), handle.tokens, handle.topk, num_experts_);
  Tensor permuted = Tensor::empty({handle.rows, handle.hidden}, DType::F32);
  ops::cpu::permute_forward(permuted.data<float>(), hidden.data<float>(),
                            handle.row_id_map.data<int64_t>(), handle.rows, handle.tokens,
                            handle.topk, handle.hidden);
  return permuted;
}

Tensor SingleRankTokenDispatcher::combine_postprocess(const Tensor& expert_out,
                                                      Handle& handle) const {
  handle.expert_out = expert_out;
  Tensor out = Tensor::empty({handle.tokens, handle.hidden}, DType::F32);
  ops::cpu::unpermute_forward(out.data<float>(), expert_out.data<float>(),
                              handle.probs.data<float>(), handle.row_id_map.data<int64_t>(),
                              handle.rows, handle.tokens, handle.topk, handle.hidden);
  return out;
}

Tensor SingleRankTokenDispatcher::dispatch(const Tensor& hidden, const Routing& routing,
                                           Handle& handle) const {
  return dispatch_postprocess(token_dispatch(dispatch_preprocess(hidden, routing, handle)));
}

Tensor SingleRankTokenDispatcher::combine(const Tensor& expert_out, Handle& handle) const {
  return combine_postprocess(token_combine(combine_preprocess(expert_out)), handle);
}

Tensor SingleRankTokenDispatcher::combine_backward(const Tensor& dout, const Handle& handle,
                                                   Tensor& dprobs) const {
  Tensor dexpert_out = Tensor::empty({handle.rows, handle.hidden}, DType::F32);
  dprobs = Tensor::empty({handle.tokens, handle.topk}, DType::F32);
  ops::cpu::unpermute_backward(dexpert_out.data<float>(), dprobs.data<float>(), dout.data<float>(),
                               handle.expert_out.data<float>(), handle.probs.data<float>(),
                               handle.row_id_map.data<int64_t>(), handle.rows, handle.tokens,
                               handle.topk, handle.hidden);
  return dexpert_out;
}

Tensor SingleRankTokenDispatcher::dispatch_backward(const Tensor& dpermuted,
                                                    const Handle& handle) const {
  Tensor dhidden = Tensor::empty({handle.tokens, handle.hidden}, DType::F32);
  ops::cpu::permute_backward(dhidden.data<float>(), dpermuted.data<float>(),
                             handle.row_id_map.data<int64_t>(), handle.rows, handle.tokens,
                             handle.topk, handle.hidden);
  return dhidden;
}

}  // namespace moebench::model
