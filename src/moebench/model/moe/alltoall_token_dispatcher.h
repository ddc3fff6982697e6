#pragma once
// Megatron-Core's MoEAlltoAllTokenDispatcher for expert parallelism with
// expert-TP = 1. The E experts are split evenly over the ep group: ep rank p
// holds experts [p*L, (p+1)*L), L = E / ep. Every routed (token, slot) row
// travels to the rank of its expert with one variable-split all-to-all and
// comes back with the reverse one:
//   dispatch_preprocess   sort slots by expert, hence by destination rank, and
//                         gather their rows; count rows per expert and per rank
//   token_dispatch        all-to-all of the per-expert counts, then of the rows
//   dispatch_postprocess  regroup the received rows from [source rank][local
//                         expert] to [local expert][source rank]
//   combine_preprocess    the inverse regrouping
//   token_combine         the reverse all-to-all: rows back to their source rank
//   combine_postprocess   weight rows by their probs and sum them per token
// A local expert's rows thus come from source rank 0, 1, ... in each source's
// token order: the order one rank holding every token would give them.
// Communication lives only in token_dispatch / token_combine, so a schedule
// may run the phases one by one and overlap them with other work.
//
// Dispatch and combine are adjoints sharing one Handle, one per microbatch
// in flight: the backward of combine is dispatch's communication and
// regrouping, the backward of dispatch is combine's. Every phase and backward
// is collective over the ep group. CPU float32 for now.
#include <cstdint>
#include <vector>

#include "moebench/core/tensor.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/model/moe/router.h"

namespace moebench::model {

class AllToAllTokenDispatcher {
 public:
  struct Handle {
    int64_t tokens = 0, topk = 0, hidden = 0;
    int64_t rows = 0;                        // rows this rank sends: its kept slots
    Tensor row_id_map;                       // int64 [rows]: slot token*topk + k of each sent row
    Tensor probs;                            // [N, topk] routing weights (0 when dropped)
    std::vector<int64_t> tokens_per_expert;  // [E]: rows this rank sends to each expert
    std::vector<int64_t> rows_to_rank;       // [ep]: rows sent to each ep rank
    std::vector<int64_t> rows_from_rank;     // [ep]: rows received from each ep rank
    std::vector<int64_t> rows_from_rank_per_local_expert;  // [ep, L], source-major
    std::vector<int64_t> tokens_per_local_expert;          // [L]: rows each local expert gets
    Tensor
        returned_expert_out;  // [rows, h]: expert outputs back home, saved for combine's backward
  };

  // Throws Error unless the ep group divides num_experts and expert-TP is 1.
  AllToAllTokenDispatcher(int64_t num_experts, const dist::ParallelState& parallel_state);

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
  Tensor token_dispatch(const Tensor& permuted, Handle& handle) const;
  Tensor dispatch_postprocess(const Tensor& received, const Handle& handle) const;
  Tensor combine_preprocess(const Tensor& expert_out, const Handle& handle) const;
  Tensor token_combine(const Tensor& by_source_rank, const Handle& handle) const;
  Tensor combine_postprocess(const Tensor& returned, Handle& handle) const;

 private:
  void exchange_counts(Handle& handle) const;
  Tensor exchange_rows(const Tensor& rows, const std::vector<int64_t>& send_rows,
                       const std::vector<int64_t>& recv_rows) const;

  int64_t num_experts_;
  int64_t num_local_experts_;
  int64_t first_local_expert_;
  dist::Communicator* ep_group_;
};

}  // namespace moebench::model
