#include "moebench/core/rng.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <string>
#include <thread>
#include <vector>

#include "moebench/core/error.h"

namespace moebench {
namespace {

// Runs body(begin, end) over [0, count) split across the hardware threads,
// inline when the range is small.
template <typename Body>
void parallel_for(int64_t count, Body&& body) {
  constexpr int64_t kMinimumPerThread = int64_t{1} << 18;
  const int64_t threads =
      std::clamp<int64_t>(count / kMinimumPerThread, 1, std::max(1u, std::thread::hardware_concurrency()));
  if (threads == 1) return body(int64_t{0}, count);
  std::vector<std::thread> workers;
  const int64_t chunk = (count + threads - 1) / threads;
  for (int64_t begin = 0; begin < count; begin += chunk)
    workers.emplace_back([&body, begin, end = std::min(count, begin + chunk)] { body(begin, end); });
  for (auto& worker : workers) worker.join();
}


// Philox-4x32 constants from Salmon et al. 2011: the round multipliers and the
// Weyl-sequence key increments (golden ratio and sqrt(3) - 1, as 32-bit fractions).
constexpr uint32_t kPhiloxMultiplier0 = 0xD2511F53;
constexpr uint32_t kPhiloxMultiplier1 = 0xCD9E8D57;
constexpr uint32_t kPhiloxKeyIncrement0 = 0x9E3779B9;
constexpr uint32_t kPhiloxKeyIncrement1 = 0xBB67AE85;
constexpr int kPhiloxRounds = 10;

constexpr float kTwoToMinus24 = 0x1p-24f;

PhiloxCounter philox_round(const PhiloxCounter& x, const PhiloxKey& key) {
  const uint64_t product0 = uint64_t{kPhiloxMultiplier0} * x[0];
  const uint64_t product1 = uint64_t{kPhiloxMultiplier1} * x[2];
  const uint32_t high0 = uint32_t(product0 >> 32);
  const uint32_t low0 = uint32_t(product0);
  const uint32_t high1 = uint32_t(product1 >> 32);
  const uint32_t low1 = uint32_t(product1);
  return {high1 ^ x[1] ^ key[0], low1, high0 ^ x[3] ^ key[1], low0};
}

// Sets each element of `tensor`, a shard lying at `placement`, to
// value_of(its index in the global tensor).
template <typename ValueOf>
void fill_from_global_index(Tensor& tensor, const ShardPlacement& placement, const char* operation,
                            ValueOf&& value_of) {
  if (!tensor.defined() || !tensor.device().is_cpu() || !is_floating_point(tensor.dtype())) {
    throw Error(std::string(operation) + " fills floating-point CPU tensors, got " +
                tensor.describe() + "; fill a CPU f32 tensor and convert or copy it");
  }
  const std::vector<int64_t>& shape = tensor.shape();
  bool fits =
      placement.global_shape.size() == shape.size() && placement.origin.size() == shape.size();
  for (size_t d = 0; fits && d < shape.size(); ++d) {
    fits = placement.origin[d] >= 0 && placement.origin[d] + shape[d] <= placement.global_shape[d];
  }
  if (!fits) {
    throw Error(std::string(operation) + ": a shard of shape " + format_dims(shape) +
                " does not fit at origin " + format_dims(placement.origin) + " in global shape " +
                format_dims(placement.global_shape) +
                "; pass one origin per dim with origin + shard size <= global size");
  }
  const std::vector<int64_t> global_strides = contiguous_strides(placement.global_shape);
  int64_t shard_start = 0;  // global index of the shard's first element
  for (size_t d = 0; d < shape.size(); ++d) shard_start += placement.origin[d] * global_strides[d];

  // Straight into the tensor when it is contiguous float32, else through a
  // float32 copy rounded into the tensor's dtype.
  const bool direct = tensor.dtype() == DType::F32 && tensor.is_contiguous();
  Tensor values = direct ? tensor : Tensor::empty(shape, DType::F32);
  float* out = values.data<float>();
  if (placement.global_shape == shape) {
    // The whole tensor: element i is global index i. Each value depends only on
    // its index, so threads over disjoint ranges give the same bits as one
    // (initialising billions of parameters one by one takes minutes).
    parallel_for(values.numel(), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) out[i] = value_of(uint64_t(i));
    });
  } else {
    for_each_offset_pair(shape, global_strides, shard_start, values.strides(), 0,
                         [&](int64_t global_index, int64_t local_index) {
                           out[local_index] = value_of(uint64_t(global_index));
                         });
  }
  if (!direct) tensor.copy_from(values);
}

}  // namespace

PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key) {
  for (int round = 0; round < kPhiloxRounds; ++round) {
    if (round > 0) {
      key[0] += kPhiloxKeyIncrement0;
      key[1] += kPhiloxKeyIncrement1;
    }
    counter = philox_round(counter, key);
  }
  return counter;
}

uint64_t fnv1a_64(std::string_view text) {
  uint64_t hash = 0xCBF29CE484222325ull;  // FNV-1a 64-bit offset basis
  for (char c : text) {
    hash ^= uint8_t(c);
    hash *= 0x100000001B3ull;  // FNV 64-bit prime
  }
  return hash;
}

CounterRng::CounterRng(uint64_t seed, uint64_t stream_id) : seed_(seed), stream_id_(stream_id) {}

CounterRng::CounterRng(uint64_t seed, std::string_view stream_name)
    : CounterRng(seed, fnv1a_64(stream_name)) {}

PhiloxCounter CounterRng::block(uint64_t block_index) const {
  return philox4x32_10({uint32_t(block_index), uint32_t(block_index >> 32), uint32_t(stream_id_),
                        uint32_t(stream_id_ >> 32)},
                       {uint32_t(seed_), uint32_t(seed_ >> 32)});
}

uint32_t CounterRng::bits(uint64_t index) const { return block(index / 4)[index % 4]; }

float CounterRng::uniform(uint64_t index) const { return float(bits(index) >> 8) * kTwoToMinus24; }

namespace {

// Box-Muller on two Philox words: the (cos, sin) normals of one pair.
std::array<float, 2> box_muller(uint32_t first, uint32_t second) {
  // u1 in (0, 1] keeps the logarithm finite; u2 in [0, 1).
  const double u1 = double((first >> 8) + 1) * kTwoToMinus24;
  const double u2 = double(second >> 8) * kTwoToMinus24;
  const double radius = std::sqrt(-2.0 * std::log(u1));
  const double angle = 2.0 * std::numbers::pi * u2;
  return {float(radius * std::cos(angle)), float(radius * std::sin(angle))};
}

}  // namespace

float CounterRng::normal(uint64_t index) const {
  const PhiloxCounter words = block(index / 4);
  const uint64_t pair = (index % 4) / 2;
  return box_muller(words[2 * pair], words[2 * pair + 1])[index % 2];
}

std::array<float, 4> CounterRng::normals(uint64_t block_index) const {
  const PhiloxCounter words = block(block_index);
  const std::array<float, 2> low = box_muller(words[0], words[1]), high = box_muller(words[2], words[3]);
  return {low[0], low[1], high[0], high[1]};
}

ShardPlacement ShardPlacement::whole(const std::vector<int64_t>& shape) {
  return {shape, std::vector<int64_t>(shape.size(), 0)};
}

void fill_uniform(Tensor& tensor, const CounterRng& rng, float low, float high,
                  const ShardPlacement& placement) {
  fill_from_global_index(tensor, placement, "fill_uniform", [&](uint64_t index) {
    return float(low + (double(high) - low) * rng.uniform(index));
  });
}

void fill_uniform(Tensor& tensor, const CounterRng& rng, float low, float high) {
  fill_uniform(tensor, rng, low, high, ShardPlacement::whole(tensor.shape()));
}

void fill_normal(Tensor& tensor, const CounterRng& rng, float mean, float std,
                 const ShardPlacement& placement) {
  if (tensor.defined() && tensor.device().is_cpu() && tensor.dtype() == DType::F32 && tensor.is_contiguous() &&
      placement.global_shape == tensor.shape() &&
      std::all_of(placement.origin.begin(), placement.origin.end(), [](int64_t o) { return o == 0; })) {
    // The whole tensor: one Philox block and two logarithms per 4 elements.
    float* out = tensor.data<float>();
    const int64_t count = tensor.numel();
    parallel_for((count + 3) / 4, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        const std::array<float, 4> values = rng.normals(uint64_t(b));
        for (int64_t i = 0; i < 4 && 4 * b + i < count; ++i) out[4 * b + i] = float(mean + double(std) * values[i]);
      }
    });
    return;
  }
  fill_from_global_index(tensor, placement, "fill_normal", [&](uint64_t index) {
    return float(mean + double(std) * rng.normal(index));
  });
}

void fill_normal(Tensor& tensor, const CounterRng& rng, float mean, float std) {
  fill_normal(tensor, rng, mean, std, ShardPlacement::whole(tensor.shape()));
}

}  // namespace moebench
