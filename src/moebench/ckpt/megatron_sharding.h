#pragma once
// Which slices of each parameter a rank holds under a TP/PP/EP mapping, by
// Megatron-Core's rules:
//   PP  decoder layers split evenly over stages; the embedding on the first,
//       the final norm and output layer on the last stage.
//   EP  routed experts split evenly over expert-parallel ranks (experts are
//       never tensor-split); everything else is replicated over them and
//       saved by EP rank 0.
//   TP  column-parallel weights (linear_qkv, linear_fc1, the MLA up
//       projections and linear_q_proj, word embeddings, output layer) split
//       by rows: linear_qkv by query groups (its rows are grouped so), a
//       SwiGLU linear_fc1 as [gate_t; up_t], two pieces; row-parallel
//       weights (linear_proj, linear_fc2) by columns; the rest (norms, the
//       router, MLA down projections) replicated and saved by TP rank 0.
// Ranks are numbered tp fastest, then ep, then pp (Megatron's tp-cp-ep-dp-pp
// order with CP 1 and the data-parallel ranks being the expert ones).
#include <string>
#include <vector>

#include "moebench/ckpt/tensor_slice.h"
#include "moebench/config/model_config.h"

namespace moebench::ckpt {

struct ParallelMapping {
  int tp = 1;
  int pp = 1;
  int ep = 1;
  int rank_count() const { return tp * pp * ep; }
};

struct RankCoordinates {
  int tp = 0;
  int pp = 0;
  int ep = 0;
};
RankCoordinates coordinates_of(const ParallelMapping& mapping, int rank);

// Throws an Error naming the size that does not divide the model (layers by
// PP, experts by EP, heads/groups/vocabulary/FFN by TP).
void check_mapping_fits(const config::ModelConfig& config, const ParallelMapping& mapping);

// The slices of parameter (or buffer) `name` of global `shape` that the rank
// at `at` saves, in the order its local tensor concatenates them; empty when
// it saves none.
std::vector<TensorSlice> saved_slices(const config::ModelConfig& config, const std::string& name,
                                      const std::vector<int64_t>& shape, const ParallelMapping& mapping,
                                      const RankCoordinates& at);

}  // namespace moebench::ckpt
