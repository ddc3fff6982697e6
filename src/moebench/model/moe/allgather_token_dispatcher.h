#pragma once
// Megatron-Core's MoEAllGatherTokenDispatcher. Every rank of the tp_ep group
// (expert-TP x EP ranks; just the ep group while expert-TP is 1) sees every
// token of the group and keeps the rows of its own experts; the E experts are
// split evenly over ep ranks, ep rank p holding [p*L, (p+1)*L), L = E / ep.
//   dispatch_preprocess   check and record the shapes and the routing
//   token_dispatch        all-gather tokens, probs and routing map over tp_ep
//   dispatch_postprocess  sort the gathered slots of local experts by expert
//                         and gather their rows
//   combine_preprocess    weight rows by their probs and sum them per gathered
//                         token: this rank's share of every token's output
//   token_combine         reduce-scatter the shares: each rank gets its tokens
//   combine_postprocess   the output in the caller's shape
// A local expert's rows come in the group's token order (rank 0's tokens,
// then rank 1's, ...), as one rank holding every token would order them.
// With expert-TP > 1 the experts are TP-sharded and produce partial outputs,
// which the same reduce-scatter sums.
//
// Dispatch and combine are adjoints sharing one Handle, one per microbatch in
// flight: all-gather and reduce-scatter are each other's backward. Every
// rank of the group passes the same number of tokens, as Megatron's
// sequence-parallel layout guarantees. Every phase that communicates and
// both backwards are collective over tp_ep. CPU float32 for now.
#include <cstdint>
#include <vector>

#include "moebench/core/tensor.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/model/moe/router.h"

namespace moebench::model {

class AllGatherTokenDispatcher {
 public:
  struct Handle {
    int64_t tokens = 0, topk = 0, hidden = 0;  // this rank's tokens
    int64_t gathered_tokens = 0;               // G: the tokens of the whole tp_ep group
    int64_t rows = 0;                          // rows of this rank's local experts
    Routing routing;                           // this rank's [N, topk], kept for token_dispatch
    Tensor gathered_routing_map;               // int64 [G, topk]
    Tensor gathered_probs;                     // [G, topk]
    Tensor row_id_map;  // int64 [rows]: gathered slot token*topk + k of each local row
    std::vector<int64_t> tokens_per_local_expert;  // [L]
    Tensor expert_out;                             // [rows, h], saved by combine for its backward
  };

  // Throws Error unless the ep group divides num_experts.
  AllGatherTokenDispatcher(int64_t num_experts, const dist::ParallelState& parallel_state);

  int64_t num_local_experts() const { return num_local_experts_; }
  int64_t first_local_expert() const { return first_local_expert_; }

  // hidden [N, h] -> expert_in [sum(tokens_per_local_expert), h], grouped by local expert.
  Tensor dispatch(const Tensor& hidden, const Routing& routing, Handle& handle) const;
  // expert_out [sum(tokens_per_local_expert), h] -> out [N, h] = sum over kept slots of prob * row,
  // plus `residual` [N, h] when given (added after the exchange).
  Tensor combine(const Tensor& expert_out, Handle& handle, const Tensor& residual = Tensor()) const;
  // dout [N, h] -> dexpert_out [sum(tokens_per_local_expert), h]; writes dprobs [N, topk].
  Tensor combine_backward(const Tensor& dout, const Handle& handle, Tensor& dprobs) const;
  // dexpert_in [sum(tokens_per_local_expert), h] -> dhidden [N, h].
  Tensor dispatch_backward(const Tensor& dexpert_in, const Handle& handle) const;

  // The six phases dispatch() and combine() chain, for schedules that interleave them.
  Tensor dispatch_preprocess(const Tensor& hidden, const Routing& routing, Handle& handle) const;
  Tensor token_dispatch(const Tensor& hidden, Handle& handle) const;
  Tensor dispatch_postprocess(const Tensor& gathered, Handle& handle) const;
  Tensor combine_preprocess(const Tensor& expert_out, Handle& handle) const;
  Tensor token_combine(const Tensor& gathered_share, const Handle& handle) const;
  Tensor combine_postprocess(const Tensor& out, const Handle& handle) const;

 private:
  // [n, ...] on every rank -> [group size * n, ...], rank-major.
  Tensor gather(const Tensor& local) const;
  // [group size * n, ...] -> [n, ...]: the sum over the group of this rank's chunk.
  Tensor reduce_scatter(const Tensor& gathered) const;

  int64_t num_experts_;
  int64_t num_local_experts_;
  int64_t first_local_expert_;
  dist::Communicator* token_group_;  // tp_ep
};

}  // namespace moebench::model
