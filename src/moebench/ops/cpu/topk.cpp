// Reference top-k: a partial sort of candidate indices under one strict order
// (larger value first, then lower index), used for experts and for groups.
#include "moebench/ops/topk.h"

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "moebench/core/error.h"

namespace moebench::ops::cpu {
namespace {

// Reorders `candidates` so its first k are the k best by (value desc, index asc).
template <typename T>
void sort_best_first(std::vector<std::int64_t>& candidates, const T* value_of, std::int64_t k) {
  std::partial_sort(candidates.begin(), candidates.begin() + k, candidates.end(),
                    [value_of](std::int64_t a, std::int64_t b) {
                      return value_of[a] > value_of[b] || (value_of[a] == value_of[b] && a < b);
                    });
}

void check_topk_shape(const char* op, std::int64_t rows, std::int64_t num_experts, std::int64_t k) {
  const std::string name(op);
  if (rows < 0 || num_experts <= 0)
    throw Error(name + ": rows " + std::to_string(rows) + " must be >= 0 and num_experts " +
                std::to_string(num_experts) + " > 0");
  if (k <= 0 || k > num_experts)
    throw Error(name + ": k " + std::to_string(k) + " must be in [1, num_experts " +
                std::to_string(num_experts) + "]; set moe_router_topk accordingly");
}

template <typename T>
T group_score_of(const T* group, std::int64_t size, GroupScore group_score) {
  if (group_score == GroupScore::kMax) return *std::max_element(group, group + size);
  T first = group[0];
  T second = group[1];
  if (second > first) std::swap(first, second);
  for (std::int64_t e = 2; e < size; ++e) {
    if (group[e] > first) {
      second = first;
      first = group[e];
    } else if (group[e] > second) {
      second = group[e];
    }
  }
  return first + second;
}

}  // namespace

template <typename T>
void topk(T* values, std::int64_t* indices, const T* scores, std::int64_t rows,
          std::int64_t num_experts, std::int64_t k) {
  check_topk_shape("topk", rows, num_experts, k);
  std::vector<std::int64_t> experts(num_experts);
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* row = scores + r * num_experts;
    std::iota(experts.begin(), experts.end(), 0);
    sort_best_first(experts, row, k);
    for (std::int64_t i = 0; i < k; ++i) {
      indices[r * k + i] = experts[i];
      values[r * k + i] = row[experts[i]];
    }
  }
}

template <typename T>
void group_limited_topk(T* values, std::int64_t* indices, const T* scores, std::int64_t rows,
                        std::int64_t num_experts, std::int64_t k, std::int64_t num_groups,
                        std::int64_t group_topk, GroupScore group_score) {
  check_topk_shape("group_limited_topk", rows, num_experts, k);
  if (num_groups <= 0 || num_experts % num_groups != 0)
    throw Error("group_limited_topk: num_groups " + std::to_string(num_groups) +
                " must divide num_experts " + std::to_string(num_experts) +
                "; set moe_router_num_groups (n_group) to a divisor");
  const std::int64_t group_size = num_experts / num_groups;
  if (group_topk <= 0 || group_topk > num_groups || k > group_topk * group_size)
    throw Error("group_limited_topk: group_topk " + std::to_string(group_topk) +
                " must be in [1, num_groups " + std::to_string(num_groups) +
                "] and keep at least k " + std::to_string(k) + " experts (" +
                std::to_string(group_size) + " per group); raise moe_router_group_topk");
  if (group_score == GroupScore::kTop2Sum && group_size < 2)
    throw Error("group_limited_topk: top-2-sum group scores need >= 2 experts per group, got " +
                std::to_string(group_size) + "; use fewer groups");

  std::vector<T> group_scores(num_groups);
  std::vector<std::int64_t> groups(num_groups);
  std::vector<std::int64_t> kept_experts(group_topk * group_size);
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* row = scores + r * num_experts;
    for (std::int64_t g = 0; g < num_groups; ++g)
      group_scores[g] = group_score_of(row + g * group_size, group_size, group_score);
    std::iota(groups.begin(), groups.end(), 0);
    sort_best_first(groups, group_scores.data(), group_topk);
    // Only the kept groups' experts are candidates: the others are -inf.
    for (std::int64_t i = 0; i < group_topk; ++i)
      std::iota(kept_experts.begin() + i * group_size, kept_experts.begin() + (i + 1) * group_size,
                groups[i] * group_size);
    sort_best_first(kept_experts, row, k);
    for (std::int64_t i = 0; i < k; ++i) {
      indices[r * k + i] = kept_experts[i];
      values[r * k + i] = row[kept_experts[i]];
    }
  }
}

#define MOEBENCH_INSTANTIATE_TOPK(T)                                                            \
  template void topk<T>(T*, std::int64_t*, const T*, std::int64_t, std::int64_t, std::int64_t); \
  template void group_limited_topk<T>(T*, std::int64_t*, const T*, std::int64_t, std::int64_t,  \
                                      std::int64_t, std::int64_t, std::int64_t, GroupScore);
MOEBENCH_INSTANTIATE_TOPK(float)
MOEBENCH_INSTANTIATE_TOPK(double)
#undef MOEBENCH_INSTANTIATE_TOPK

}  // namespace moebench::ops::cpu
