#pragma once
// Counter-based random numbers for reproducible initialisation.
//
// Value i of a stream is a pure function of (seed, stream id, i): no state
// advances, so any rank can produce any element in any order. A stream id is
// derived from a name (a parameter's state-dict name), which makes a weight's
// initial values depend only on the seed, its name and the element's index
// in the full (unsharded) tensor, never on the device or on how the tensor is
// split over TP / EP / PP ranks.
//
// Generator: Philox-4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random
// numbers: as easy as 1, 2, 3", SC 2011). Key = seed; counter = (i / 4 as 64
// bits, stream id as 64 bits); element i takes word i % 4 of that block.
#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "moebench/core/tensor.h"

namespace moebench {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;
PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key);

// 64-bit FNV-1a: a stable, platform-independent hash of a name.
uint64_t fnv1a_64(std::string_view text);

class CounterRng {
 public:
  CounterRng(uint64_t seed, uint64_t stream_id);
  // Stream id = fnv1a_64(stream_name).
  CounterRng(uint64_t seed, std::string_view stream_name);

  uint64_t seed() const { return seed_; }
  uint64_t stream_id() const { return stream_id_; }

  // 32 random bits for element `index`.
  uint32_t bits(uint64_t index) const;
  // Uniform in [0, 1) on a grid of 2^-24 (every value exact in float).
  float uniform(uint64_t index) const;
  // Standard normal by Box-Muller (computed in double, rounded to float).
  // Elements 4k..4k+3 share one Philox block: 4k and 4k+1 are the cos and
  // sin halves of words 0-1, 4k+2 and 4k+3 those of words 2-3. Magnitudes
  // stay below sqrt(48 ln 2) ~ 5.77 because the uniforms are 24-bit. Draw a
  // stream either as uniforms or as normals: the two views share counters.
  float normal(uint64_t index) const;
  // normal(4 * block_index + i) for i = 0..3, from one Philox block.
  std::array<float, 4> normals(uint64_t block_index) const;

 private:
  PhiloxCounter block(uint64_t block_index) const;

  uint64_t seed_;
  uint64_t stream_id_;
};

// Where a shard lies in the global tensor it is part of: shard element
// `index` is element `origin + index` of a row-major tensor of `global_shape`
// (rows [a, b) of a matrix: origin {a, 0}; columns [c, d): origin {0, c}).
struct ShardPlacement {
  std::vector<int64_t> global_shape;
  std::vector<int64_t> origin;

  static ShardPlacement whole(const std::vector<int64_t>& shape);
};

// Fill a floating-point CPU tensor (any layout) with element i of the global
// tensor set to low + (high - low) * uniform(i), or mean + std * normal(i).
// Each value is computed as a float, then rounded to the tensor's dtype, so a
// bf16 weight equals the bf16 cast of its fp32 twin. Filling a shard with its
// placement gives exactly the values of the same region of a full fill.
void fill_uniform(Tensor& tensor, const CounterRng& rng, float low, float high,
                  const ShardPlacement& placement);
void fill_uniform(Tensor& tensor, const CounterRng& rng, float low, float high);
void fill_normal(Tensor& tensor, const CounterRng& rng, float mean, float std,
                 const ShardPlacement& placement);
void fill_normal(Tensor& tensor, const CounterRng& rng, float mean, float std);

}  // namespace moebench
