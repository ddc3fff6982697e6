#pragma once
// Top-k over one row of at most 32 * V values held by a warp: lane l holds
// the values of experts l, l + 32, ..., one per register (experts past the
// row's end masked off). Orders as ops/topk.h does: larger value first, then
// lower index. Group-limited selection keeps the best groups of consecutive
// experts by their largest value or the sum of their two largest. Every lane
// of the warp must call these together; results are the same on every lane.
#include <cuda_runtime.h>

namespace moebench::ops::cuda::warp_select {

constexpr int kWarpSize = 32;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kMaxTopk = 8;
constexpr int kMaxGroups = 8;
constexpr int kNoExpert = 0x7fffffff;  // loses every comparison against a real expert

// (value, expert) ordering of ops/topk.h: larger value first, then lower index.
__device__ inline bool is_better(float value, int expert, float best_value, int best_expert) {
  return value > best_value || (value == best_value && expert < best_expert);
}

// Every lane ends with the warp's best (value, expert) pair.
__device__ inline void warp_argmax(float& value, int& expert) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other_value = __shfl_xor_sync(kFullMask, value, offset);
    const int other_expert = __shfl_xor_sync(kFullMask, expert, offset);
    if (is_better(other_value, other_expert, value, expert)) {
      value = other_value;
      expert = other_expert;
    }
  }
}

// v[] of the lane that owns `expert` (lane expert % 32, register expert / 32), sent to all lanes.
template <int V>
__device__ inline float value_of_expert(const float (&v)[V], int expert) {
  const int lane = threadIdx.x % kWarpSize;
  float mine = 0.0f;
  // Compared as a whole expert id, not as register expert / 32: the compiler
  // would turn that into a run-time index into a local-memory copy of v.
#pragma unroll
  for (int i = 0; i < V; ++i)
    if (i * kWarpSize + lane == expert) mine = v[i];
  return __shfl_sync(kFullMask, mine, expert % kWarpSize);
}

// v[expert] += amount on the owning lane; the other lanes leave v alone.
template <int V>
__device__ inline void add_to_expert(float (&v)[V], int expert, float amount, int lane) {
#pragma unroll
  for (int i = 0; i < V; ++i)
    if (i * kWarpSize + lane == expert) v[i] += amount;
}

// The k best experts among those whose bit is set in `allowed` (bit i: this
// lane's register i), best first; results are the same on every lane.
template <int V>
__device__ inline void warp_topk(int (&chosen)[kMaxTopk], float (&chosen_value)[kMaxTopk],
                                 const float (&v)[V], unsigned allowed, int k, int lane) {
#pragma unroll
  for (int j = 0; j < kMaxTopk; ++j) {
    if (j >= k) break;
    float best = -INFINITY;
    int best_expert = kNoExpert;
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const int expert = i * kWarpSize + lane;
      if (((allowed >> i) & 1u) && is_better(v[i], expert, best, best_expert)) {
        best = v[i];
        best_expert = expert;
      }
    }
    warp_argmax(best, best_expert);
    chosen[j] = best_expert;
    chosen_value[j] = best;
    if (best_expert % kWarpSize == lane) allowed &= ~(1u << (best_expert / kWarpSize));
  }
}

// Bit g set for the group_topk best groups of the selection scores v[] (group
// score: the largest, or the sum of the two largest), ties to the lower group.
template <int V>
__device__ inline unsigned kept_groups(const float (&v)[V], const int (&group_of)[V], unsigned valid,
                                       int groups, int group_topk, bool top2_group_score) {
  float group_score[kMaxGroups];
#pragma unroll
  for (int g = 0; g < kMaxGroups; ++g) {
    group_score[g] = -INFINITY;
    if (g >= groups) continue;
    float first = -INFINITY, second = -INFINITY;
#pragma unroll
    for (int i = 0; i < V; ++i) {
      if (!((valid >> i) & 1u) || group_of[i] != g) continue;
      if (v[i] > first) {
        second = first;
        first = v[i];
      } else if (v[i] > second) {
        second = v[i];
      }
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) {
      const float other_first = __shfl_xor_sync(kFullMask, first, offset);
      const float other_second = __shfl_xor_sync(kFullMask, second, offset);
      second = fmaxf(fminf(first, other_first), fmaxf(second, other_second));
      first = fmaxf(first, other_first);
    }
    group_score[g] = top2_group_score ? first + second : first;
  }
  unsigned kept = 0;
  for (int r = 0; r < group_topk; ++r) {
    float best = -INFINITY;
    int best_group = kNoExpert;
#pragma unroll
    for (int g = 0; g < kMaxGroups; ++g)
      if (g < groups && !((kept >> g) & 1u) && is_better(group_score[g], g, best, best_group)) {
        best = group_score[g];
        best_group = g;
      }
    kept |= 1u << best_group;
  }
  return kept;
}

}  // namespace moebench::ops::cuda::warp_select
