#pragma once
// Top-k selection over the expert scores of each token, plain and
// group-limited (DeepSeek-V2 "group_limited_greedy", DeepSeek-V3 "noaux_tc").
// All arrays are row-major and contiguous.
//
// Order and ties: each row's k results are sorted by value, largest first;
// equal values are ordered by lower index first, so the selection is
// deterministic (torch.topk leaves ties unspecified). Scores must not be NaN.
#include <cstdint>

namespace moebench::ops {

// How a group of experts is scored before the best groups are kept.
enum class GroupScore {
  kMax,      // the group's largest score (DeepSeek-V2 group_limited_greedy)
  kTop2Sum,  // the sum of the group's two largest scores (DeepSeek-V3 noaux_tc)
};

}  // namespace moebench::ops

namespace moebench::ops::cpu {

// values[rows, k] and indices[rows, k] of the k largest scores[rows, num_experts].
// Instantiated for float and double.
template <typename T>
void topk(T* values, std::int64_t* indices, const T* scores, std::int64_t rows,
          std::int64_t num_experts, std::int64_t k);

// Group-limited top-k: the experts of a row form num_groups consecutive groups
// of num_experts / num_groups; the group_topk best groups by `group_score`
// stay and every expert of the others counts as -inf; then the k largest.
// For noaux_tc pass the bias-corrected scores and gather the routing weights
// from the uncorrected ones by the returned indices, as DeepSeek-V3 does.
template <typename T>
void group_limited_topk(T* values, std::int64_t* indices, const T* scores, std::int64_t rows,
                        std::int64_t num_experts, std::int64_t k, std::int64_t num_groups,
                        std::int64_t group_topk, GroupScore group_score);

}  // namespace moebench::ops::cpu
