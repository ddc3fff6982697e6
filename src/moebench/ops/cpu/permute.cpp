// Reference permute / unpermute: a counting sort of the routing slots by
// expert, then gathers and weighted scatter-adds along the resulting map.
#include "moebench/ops/permute.h"

#include <algorithm>
#include <string>
#include <vector>

#include "moebench/core/error.h"

namespace moebench::ops::cpu {
namespace {

constexpr std::int64_t kDroppedSlot = -1;

void check_routing_map(const std::int64_t* routing_map, std::int64_t tokens, std::int64_t topk,
                       std::int64_t num_experts) {
  if (tokens < 0 || topk <= 0 || num_experts <= 0)
    throw Error("routing map: tokens " + std::to_string(tokens) + " must be >= 0, topk " +
                std::to_string(topk) + " and num_experts " + std::to_string(num_experts) + " > 0");
  for (std::int64_t t = 0; t < tokens; ++t) {
    const std::int64_t* experts = routing_map + t * topk;
    for (std::int64_t j = 0; j < topk; ++j) {
      if (experts[j] < kDroppedSlot || experts[j] >= num_experts)
        throw Error("routing map: token " + std::to_string(t) + " slot " + std::to_string(j) +
                    " names expert " + std::to_string(experts[j]) + ", outside [0, " +
                    std::to_string(num_experts) + ") and not -1 (dropped); check the router");
      if (experts[j] != kDroppedSlot && std::find(experts, experts + j, experts[j]) != experts + j)
        throw Error("routing map: token " + std::to_string(t) + " names expert " +
                    std::to_string(experts[j]) + " twice; a token's top-k experts must differ");
    }
  }
}

void check_row_id_map(const char* op, const std::int64_t* row_id_map, std::int64_t rows,
                      std::int64_t tokens, std::int64_t topk, std::int64_t hidden) {
  const std::string name(op);
  if (rows < 0 || tokens < 0 || topk <= 0 || hidden < 0 || rows > tokens * topk)
    throw Error(name + ": rows " + std::to_string(rows) + " must be in [0, tokens " +
                std::to_string(tokens) + " * topk " + std::to_string(topk) + "], hidden " +
                std::to_string(hidden) + " >= 0; pass the count sort_slots_by_expert returned");
  for (std::int64_t r = 0; r < rows; ++r)
    if (row_id_map[r] < 0 || row_id_map[r] >= tokens * topk)
      throw Error(name + ": row_id_map[" + std::to_string(r) +
                  "] = " + std::to_string(row_id_map[r]) + " is outside [0, " +
                  std::to_string(tokens * topk) + "); build it with sort_slots_by_expert");
}

}  // namespace

std::int64_t sort_slots_by_expert(std::int64_t* row_id_map, std::int64_t* tokens_per_expert,
                                  const std::int64_t* routing_map, std::int64_t tokens,
                                  std::int64_t topk, std::int64_t num_experts) {
  check_routing_map(routing_map, tokens, topk, num_experts);
  std::fill(tokens_per_expert, tokens_per_expert + num_experts, std::int64_t{0});
  for (std::int64_t slot = 0; slot < tokens * topk; ++slot)
    if (routing_map[slot] != kDroppedSlot) ++tokens_per_expert[routing_map[slot]];
  std::vector<std::int64_t> next_row(num_experts, 0);
  for (std::int64_t e = 1; e < num_experts; ++e)
    next_row[e] = next_row[e - 1] + tokens_per_expert[e - 1];
  const std::int64_t rows = next_row[num_experts - 1] + tokens_per_expert[num_experts - 1];
  // Slots are visited in token order, which makes the sort stable.
  for (std::int64_t slot = 0; slot < tokens * topk; ++slot)
    if (routing_map[slot] != kDroppedSlot) row_id_map[next_row[routing_map[slot]]++] = slot;
  return rows;
}

template <typename T>
void permute_forward(T* permuted, const T* input, const std::int64_t* row_id_map, std::int64_t rows,
                     std::int64_t tokens, std::int64_t topk, std::int64_t hidden) {
  check_row_id_map("permute_forward", row_id_map, rows, tokens, topk, hidden);
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* source = input + (row_id_map[r] / topk) * hidden;
    std::copy(source, source + hidden, permuted + r * hidden);
  }
}

template <typename T>
void permute_backward(T* dinput, const T* dpermuted, const std::int64_t* row_id_map,
                      std::int64_t rows, std::int64_t tokens, std::int64_t topk,
                      std::int64_t hidden) {
  check_row_id_map("permute_backward", row_id_map, rows, tokens, topk, hidden);
  std::fill(dinput, dinput + tokens * hidden, T(0));
  for (std::int64_t r = 0; r < rows; ++r) {
    T* target = dinput + (row_id_map[r] / topk) * hidden;
    const T* source = dpermuted + r * hidden;
    for (std::int64_t c = 0; c < hidden; ++c) target[c] += source[c];
  }
}

template <typename T>
void unpermute_forward(T* out, const T* expert_out, const T* probs, const std::int64_t* row_id_map,
                       std::int64_t rows, std::int64_t tokens, std::int64_t topk,
                       std::int64_t hidden) {
  check_row_id_map("unpermute_forward", row_id_map, rows, tokens, topk, hidden);
  std::fill(out, out + tokens * hidden, T(0));
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t slot = row_id_map[r];
    T* target = out + (slot / topk) * hidden;
    const T* source = expert_out + r * hidden;
    for (std::int64_t c = 0; c < hidden; ++c) target[c] += probs[slot] * source[c];
  }
}

template <typename T>
void unpermute_backward(T* dexpert_out, T* dprobs, const T* dout, const T* expert_out,
                        const T* probs, const std::int64_t* row_id_map, std::int64_t rows,
                        std::int64_t tokens, std::int64_t topk, std::int64_t hidden) {
  check_row_id_map("unpermute_backward", row_id_map, rows, tokens, topk, hidden);
  std::fill(dprobs, dprobs + tokens * topk, T(0));
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t slot = row_id_map[r];
    const T* dout_t = dout + (slot / topk) * hidden;
    const T* source = expert_out + r * hidden;
    T* dsource = dexpert_out + r * hidden;
    T dprob = 0;
    for (std::int64_t c = 0; c < hidden; ++c) {
      dsource[c] = probs[slot] * dout_t[c];
      dprob += dout_t[c] * source[c];
    }
    dprobs[slot] = dprob;
  }
}

template <typename T>
std::int64_t drop_tokens_over_capacity(std::int64_t* routing_map, T* probs, std::int64_t tokens,
                                       std::int64_t topk, std::int64_t num_experts,
                                       std::int64_t capacity) {
  check_routing_map(routing_map, tokens, topk, num_experts);
  if (capacity < 0)
    throw Error("drop_tokens_over_capacity: capacity " + std::to_string(capacity) +
                " must be >= 0; check moe_expert_capacity_factor");
  std::vector<std::vector<std::int64_t>> slots_of_expert(num_experts);
  for (std::int64_t slot = 0; slot < tokens * topk; ++slot)
    if (routing_map[slot] != kDroppedSlot) slots_of_expert[routing_map[slot]].push_back(slot);
  std::int64_t dropped = 0;
  for (std::vector<std::int64_t>& slots : slots_of_expert) {
    if (static_cast<std::int64_t>(slots.size()) <= capacity) continue;
    // Slots were collected in token order, so a stable sort breaks ties by lower token.
    std::stable_sort(slots.begin(), slots.end(),
                     [probs](std::int64_t a, std::int64_t b) { return probs[a] > probs[b]; });
    for (auto it = slots.begin() + capacity; it != slots.end(); ++it) {
      routing_map[*it] = kDroppedSlot;
      probs[*it] = T(0);
      ++dropped;
    }
  }
  return dropped;
}

#define MOEBENCH_INSTANTIATE_PERMUTE(T)                                                            \
  template void permute_forward<T>(T*, const T*, const std::int64_t*, std::int64_t, std::int64_t,  \
                                   std::int64_t, std::int64_t);                                    \
  template void permute_backward<T>(T*, const T*, const std::int64_t*, std::int64_t, std::int64_t, \
                                    std::int64_t, std::int64_t);                                   \
  template void unpermute_forward<T>(T*, const T*, const T*, const std::int64_t*, std::int64_t,    \
                                     std::int64_t, std::int64_t, std::int64_t);                    \
  template void unpermute_backward<T>(T*, T*, const T*, const T*, const T*, const std::int64_t*,   \
                                      std::int64_t, std::int64_t, std::int64_t, std::int64_t);     \
  template std::int64_t drop_tokens_over_capacity<T>(std::int64_t*, T*, std::int64_t,              \
                                                     std::int64_t, std::int64_t, std::int64_t);
MOEBENCH_INSTANTIATE_PERMUTE(float)
MOEBENCH_INSTANTIATE_PERMUTE(double)
#undef MOEBENCH_INSTANTIATE_PERMUTE

}  // namespace moebench::ops::cpu
