#include "moebench/model/moe/alltoall_token_dispatcher.h"

#include <numeric>
#include <string>

#include "moebench/core/error.h"
#include "moebench/model/moe/dispatch_arguments.h"
#include "moebench/ops/elementwise.h"
#include "moebench/ops/permute.h"
#include "moebench/ops/sort_chunks.h"

namespace moebench::model {
namespace {

int64_t sum(const std::vector<int64_t>& counts) {
  return std::accumulate(counts.begin(), counts.end(), int64_t{0});
}

// Element counts of runs of rows, for the communicator.
std::vector<int64_t> elements(const std::vector<int64_t>& rows, int64_t hidden) {
  std::vector<int64_t> counts(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) counts[i] = rows[i] * hidden;
  return counts;
}

}  // namespace

AllToAllTokenDispatcher::AllToAllTokenDispatcher(int64_t num_experts,
                                                 const dist::ParallelState& parallel_state)
    : num_experts_(num_experts), ep_group_(&parallel_state.group(GroupKind::kExpert)) {
  const int ep = ep_group_->size();
  if (num_experts <= 0 || num_experts % ep != 0)
    throw Error("AllToAllTokenDispatcher: num_experts " + std::to_string(num_experts) +
                " must be a positive multiple of the expert-parallel size " + std::to_string(ep) +
                "; check --num-experts and --expert-model-parallel-size");
  const int expert_tp = parallel_state.group(GroupKind::kExpertTensor).size();
  if (expert_tp != 1)
    throw Error("AllToAllTokenDispatcher: expert-tensor-parallel size " +
                std::to_string(expert_tp) +
                " is not supported yet; use --expert-tensor-parallel-size 1 or the allgather "
                "dispatcher");
  num_local_experts_ = num_experts / ep;
  first_local_expert_ = ep_group_->rank() * num_local_experts_;
}

Tensor AllToAllTokenDispatcher::dispatch_preprocess(const Tensor& hidden, const Routing& routing,
                                                    Handle& handle) const {
  check_dispatch_inputs("AllToAllTokenDispatcher::dispatch_preprocess", hidden, routing);
  handle = Handle{};
  handle.tokens = hidden.size(0);
  handle.hidden = hidden.size(1);
  handle.topk = routing.routing_map.size(1);
  handle.probs = routing.probs;
  handle.row_id_map = Tensor::empty({handle.tokens * handle.topk}, DType::I64);
  handle.tokens_per_expert.assign(num_experts_, 0);
  // Experts of one rank are contiguous, so expert order is also destination-rank order.
  handle.rows = ops::cpu::sort_slots_by_expert(
      handle.row_id_map.data<int64_t>(), handle.tokens_per_expert.data(),
      routing.routing_map.data<int64_t>(), handle.tokens, handle.topk, num_experts_);
  handle.rows_to_rank.assign(ep_group_->size(), 0);
  for (int64_t e = 0; e < num_experts_; ++e)
    handle.rows_to_rank[e / num_local_experts_] += handle.tokens_per_expert[e];

  Tensor permuted = Tensor::empty({handle.rows, handle.hidden}, DType::F32);
  ops::cpu::permute_forward(permuted.data<float>(), hidden.data<float>(),
                            handle.row_id_map.data<int64_t>(), handle.rows, handle.tokens,
                            handle.topk, handle.hidden);
  return permuted;
}

void AllToAllTokenDispatcher::exchange_counts(Handle& handle) const {
  const int ep = ep_group_->size();
  // Chunk p of tokens_per_expert holds rank p's experts; each rank gets back
  // [source rank][local expert].
  const std::vector<int64_t> chunk(ep, num_local_experts_);
  const Tensor sent = Tensor::from_vector(handle.tokens_per_expert);
  const Tensor received = Tensor::empty({num_experts_}, DType::I64);
  ep_group_->all_to_all(sent, chunk, received, chunk);
  const int64_t* counts = received.data<int64_t>();
  handle.rows_from_rank_per_local_expert.assign(counts, counts + num_experts_);
  handle.rows_from_rank.assign(ep, 0);
  handle.tokens_per_local_expert.assign(num_local_experts_, 0);
  for (int source = 0; source < ep; ++source)
    for (int64_t l = 0; l < num_local_experts_; ++l) {
      const int64_t rows = counts[source * num_local_experts_ + l];
      handle.rows_from_rank[source] += rows;
      handle.tokens_per_local_expert[l] += rows;
    }
}

Tensor AllToAllTokenDispatcher::exchange_rows(const Tensor& rows,
                                              const std::vector<int64_t>& send_rows,
                                              const std::vector<int64_t>& recv_rows) const {
  const int64_t hidden = rows.size(1);
  Tensor received = Tensor::empty({sum(recv_rows), hidden}, DType::F32);
  ep_group_->all_to_all(rows, elements(send_rows, hidden), received, elements(recv_rows, hidden));
  return received;
}

Tensor AllToAllTokenDispatcher::token_dispatch(const Tensor& permuted, Handle& handle) const {
  check_rows("AllToAllTokenDispatcher::token_dispatch", "permuted", permuted, handle.rows,
             handle.hidden);
  exchange_counts(handle);
  return exchange_rows(permuted, handle.rows_to_rank, handle.rows_from_rank);
}

Tensor AllToAllTokenDispatcher::dispatch_postprocess(const Tensor& received,
                                                     const Handle& handle) const {
  const int64_t ep = ep_group_->size(), local = num_local_experts_;
  check_rows("AllToAllTokenDispatcher::dispatch_postprocess", "received", received,
             sum(handle.rows_from_rank), handle.hidden);
  // Received chunks are numbered source * L + l; emit them l-major.
  std::vector<int64_t> order(ep * local);
  for (int64_t l = 0; l < local; ++l)
    for (int64_t source = 0; source < ep; ++source) order[l * ep + source] = source * local + l;
  Tensor expert_in = Tensor::empty({received.size(0), handle.hidden}, DType::F32);
  ops::cpu::sort_chunks_by_index(expert_in.data<float>(), received.data<float>(),
                                 handle.rows_from_rank_per_local_expert.data(), order.data(),
                                 ep * local, handle.hidden);
  return expert_in;
}

Tensor AllToAllTokenDispatcher::combine_preprocess(const Tensor& expert_out,
                                                   const Handle& handle) const {
  const int64_t ep = ep_group_->size(), local = num_local_experts_;
  check_rows("AllToAllTokenDispatcher::combine_preprocess", "expert_out", expert_out,
             sum(handle.tokens_per_local_expert), handle.hidden);
  // Expert outputs run in chunks l * ep + source; emit them source-major again.
  std::vector<int64_t> chunk_rows(ep * local), order(ep * local);
  for (int64_t source = 0; source < ep; ++source)
    for (int64_t l = 0; l < local; ++l) {
      chunk_rows[l * ep + source] = handle.rows_from_rank_per_local_expert[source * local + l];
      order[source * local + l] = l * ep + source;
    }
  Tensor by_source_rank = Tensor::empty({expert_out.size(0), handle.hidden}, DType::F32);
  ops::cpu::sort_chunks_by_index(by_source_rank.data<float>(), expert_out.data<float>(),
                                 chunk_rows.data(), order.data(), ep * local, handle.hidden);
  return by_source_rank;
}

Tensor AllToAllTokenDispatcher::token_combine(const Tensor& by_source_rank,
                                              const Handle& handle) const {
  check_rows("AllToAllTokenDispatcher::token_combine", "by_source_rank", by_source_rank,
             sum(handle.rows_from_rank), handle.hidden);
  return exchange_rows(by_source_rank, handle.rows_from_rank, handle.rows_to_rank);
}

Tensor AllToAllTokenDispatcher::combine_postprocess(const Tensor& returned, Handle& handle) const {
  check_rows("AllToAllTokenDispatcher::combine_postprocess", "returned", returned, handle.rows,
             handle.hidden);
  handle.returned_expert_out = returned;
  Tensor out = Tensor::empty({handle.tokens, handle.hidden}, DType::F32);
  ops::cpu::unpermute_forward(out.data<float>(), returned.data<float>(), handle.probs.data<float>(),
                              handle.row_id_map.data<int64_t>(), handle.rows, handle.tokens,
                              handle.topk, handle.hidden);
  return out;
}

Tensor AllToAllTokenDispatcher::dispatch(const Tensor& hidden, const Routing& routing,
                                         Handle& handle) const {
  return dispatch_postprocess(token_dispatch(dispatch_preprocess(hidden, routing, handle), handle),
                              handle);
}

Tensor AllToAllTokenDispatcher::combine(const Tensor& expert_out, Handle& handle, const Tensor& residual) const {
  Tensor out = combine_postprocess(token_combine(combine_preprocess(expert_out, handle), handle), handle);
  if (residual.defined()) ops::add_(out, residual);
  return out;
}

Tensor AllToAllTokenDispatcher::combine_backward(const Tensor& dout, const Handle& handle,
                                                 Tensor& dprobs) const {
  check_rows("AllToAllTokenDispatcher::combine_backward", "dout", dout, handle.tokens,
             handle.hidden);
  Tensor dreturned = Tensor::empty({handle.rows, handle.hidden}, DType::F32);
  dprobs = Tensor::empty({handle.tokens, handle.topk}, DType::F32);
  ops::cpu::unpermute_backward(dreturned.data<float>(), dprobs.data<float>(), dout.data<float>(),
                               handle.returned_expert_out.data<float>(), handle.probs.data<float>(),
                               handle.row_id_map.data<int64_t>(), handle.rows, handle.tokens,
                               handle.topk, handle.hidden);
  // The adjoint of token_combine and combine_preprocess: dispatch's exchange and regrouping.
  return dispatch_postprocess(exchange_rows(dreturned, handle.rows_to_rank, handle.rows_from_rank),
                              handle);
}

Tensor AllToAllTokenDispatcher::dispatch_backward(const Tensor& dexpert_in,
                                                  const Handle& handle) const {
  check_rows("AllToAllTokenDispatcher::dispatch_backward", "dexpert_in", dexpert_in,
             sum(handle.tokens_per_local_expert), handle.hidden);
  // The adjoint of dispatch_postprocess and token_dispatch: combine's regrouping and exchange.
  const Tensor dpermuted = token_combine(combine_preprocess(dexpert_in, handle), handle);
  Tensor dhidden = Tensor::empty({handle.tokens, handle.hidden}, DType::F32);
  ops::cpu::permute_backward(dhidden.data<float>(), dpermuted.data<float>(),
                             handle.row_id_map.data<int64_t>(), handle.rows, handle.tokens,
                             handle.topk, handle.hidden);
  return dhidden;
}

}  // namespace moebench::model
