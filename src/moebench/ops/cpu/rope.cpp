// Reference RoPE: the frequency table (plain or YaRN, following HF's
// _compute_yarn_parameters) and the rotation of each head's first rot_dim
// channels, one (a, b) pair per frequency.
#include "moebench/ops/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "moebench/core/error.h"

namespace moebench::ops {
namespace {

// The unscaled RoPE frequency of pair i: base^(-2i / rot_dim).
double rope_inverse_frequency(std::int64_t i, std::int64_t rot_dim, double base) {
  return 1.0 / std::pow(base, static_cast<double>(2 * i) / static_cast<double>(rot_dim));
}

// The (fractional) rotary dimension whose frequency makes `rotations` full
// turns over `max_positions` positions.
double correction_dim(double rotations, std::int64_t rot_dim, double base,
                      std::int64_t max_positions) {
  return static_cast<double>(rot_dim) *
         std::log(static_cast<double>(max_positions) / (rotations * 2.0 * std::numbers::pi)) /
         (2.0 * std::log(base));
}

// inv_freq[i] of YaRN: ramp 0 keeps the original frequency (extrapolation),
// ramp 1 divides it by the factor (interpolation).
std::vector<double> yarn_inverse_frequencies(std::int64_t rot_dim, double base,
                                             const YarnScaling& yarn) {
  if (yarn.factor <= 0.0 || yarn.original_max_positions <= 0)
    throw Error("YaRN factor " + std::to_string(yarn.factor) + " and original_max_positions " +
                std::to_string(yarn.original_max_positions) +
                " must both be positive; set rope_scaling.factor and "
                "rope_scaling.original_max_position_embeddings");
  const double low = std::max(
      std::floor(correction_dim(yarn.beta_fast, rot_dim, base, yarn.original_max_positions)), 0.0);
  double high = std::min(
      std::ceil(correction_dim(yarn.beta_slow, rot_dim, base, yarn.original_max_positions)),
      static_cast<double>(rot_dim - 1));
  if (low == high) high += 0.001;  // as HF: keeps the ramp finite
  std::vector<double> inv_freq(rot_dim / 2);
  for (std::int64_t i = 0; i < rot_dim / 2; ++i) {
    const double extrapolated = rope_inverse_frequency(i, rot_dim, base);
    const double interpolated = extrapolated / yarn.factor;
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    inv_freq[i] = interpolated * ramp + extrapolated * (1.0 - ramp);
  }
  return inv_freq;
}

}  // namespace

double yarn_mscale(double factor, double mscale) {
  return factor <= 1.0 ? 1.0 : 0.1 * mscale * std::log(factor) + 1.0;
}

double yarn_attention_factor(const YarnScaling& yarn) {
  if (yarn.mscale != 0.0 && yarn.mscale_all_dim != 0.0)
    return yarn_mscale(yarn.factor, yarn.mscale) / yarn_mscale(yarn.factor, yarn.mscale_all_dim);
  return yarn_mscale(yarn.factor, 1.0);
}

double mla_softmax_scale(std::int64_t qk_head_dim, const std::optional<YarnScaling>& yarn) {
  if (qk_head_dim <= 0)
    throw Error("MLA qk_head_dim " + std::to_string(qk_head_dim) +
                " must be positive; set qk_nope_head_dim + qk_rope_head_dim > 0");
  const double scale = 1.0 / std::sqrt(static_cast<double>(qk_head_dim));
  if (!yarn || yarn->mscale_all_dim == 0.0) return scale;
  const double mscale = yarn_mscale(yarn->factor, yarn->mscale_all_dim);
  return scale * mscale * mscale;
}

template <typename T>
RopeTable<T>::RopeTable(std::int64_t head_dim, double base, std::int64_t num_positions,
                        double rotary_percent, const std::optional<YarnScaling>& yarn)
    : rot_dim(static_cast<std::int64_t>(static_cast<double>(head_dim) * rotary_percent)),
      num_positions(num_positions) {
  if (rot_dim <= 0 || rot_dim % 2 != 0 || rot_dim > head_dim)
    throw Error("RoPE rotary dim int(head_dim " + std::to_string(head_dim) + " * rotary_percent " +
                std::to_string(rotary_percent) + ") = " + std::to_string(rot_dim) +
                " must be even and in (0, head_dim]; choose a rotary_percent that gives one");
  if (base <= 1.0)
    throw Error("RoPE base " + std::to_string(base) + " must be > 1; set rope_theta (e.g. 10000)");
  if (num_positions < 0)
    throw Error("RoPE table num_positions " + std::to_string(num_positions) + " must be >= 0");

  const std::int64_t half = rot_dim / 2;
  std::vector<double> inv_freq(half);
  double attention_factor = 1.0;
  if (yarn) {
    inv_freq = yarn_inverse_frequencies(rot_dim, base, *yarn);
    attention_factor = yarn_attention_factor(*yarn);
  } else {
    for (std::int64_t i = 0; i < half; ++i) inv_freq[i] = rope_inverse_frequency(i, rot_dim, base);
  }
  cos.resize(num_positions * half);
  sin.resize(num_positions * half);
  for (std::int64_t p = 0; p < num_positions; ++p) {
    for (std::int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(p) * inv_freq[i];
      cos[p * half + i] = static_cast<T>(std::cos(angle) * attention_factor);
      sin[p * half + i] = static_cast<T>(std::sin(angle) * attention_factor);
    }
  }
}

template struct RopeTable<float>;
template struct RopeTable<double>;

}  // namespace moebench::ops

namespace moebench::ops::cpu {
namespace {

// The input channels (a, b) that pair i rotates; see RopeLayout.
struct PairChannels {
  std::int64_t a;
  std::int64_t b;
};

PairChannels pair_channels(RopeLayout layout, std::int64_t i, std::int64_t half) {
  return layout == RopeLayout::kHalf ? PairChannels{i, i + half} : PairChannels{2 * i, 2 * i + 1};
}

void check_rope_shape(const char* op, std::int64_t table_rot_dim, std::int64_t table_positions,
                      const std::int64_t* positions, std::int64_t tokens, std::int64_t heads,
                      std::int64_t head_dim) {
  const std::string name(op);
  if (tokens < 0 || heads < 0)
    throw Error(name + ": tokens " + std::to_string(tokens) + " and heads " +
                std::to_string(heads) + " must be >= 0");
  if (head_dim < table_rot_dim)
    throw Error(name + ": head_dim " + std::to_string(head_dim) + " is smaller than the table's " +
                "rot_dim " + std::to_string(table_rot_dim) +
                "; build the RopeTable from this head_dim");
  for (std::int64_t t = 0; t < tokens; ++t)
    if (positions[t] < 0 || positions[t] >= table_positions)
      throw Error(name + ": position " + std::to_string(positions[t]) + " of token " +
                  std::to_string(t) + " is outside the RopeTable's [0, " +
                  std::to_string(table_positions) + "); build the table for more positions");
}

// One head of one token. `forward` rotates by +angle and gathers the input
// pairs into the half layout; the backward rotates by -angle and scatters
// them back to the input layout. A copy of the rotated slice lets out alias in.
template <typename T>
void rotate_head(T* out, const T* in, const T* cos, const T* sin, std::int64_t rot_dim,
                 std::int64_t head_dim, RopeLayout layout, bool forward, std::vector<T>& slice) {
  const std::int64_t half = rot_dim / 2;
  slice.assign(in, in + rot_dim);
  for (std::int64_t i = 0; i < half; ++i) {
    const PairChannels pair = pair_channels(layout, i, half);
    if (forward) {
      const T a = slice[pair.a];
      const T b = slice[pair.b];
      out[i] = a * cos[i] - b * sin[i];
      out[i + half] = b * cos[i] + a * sin[i];
    } else {
      const T da = slice[i];
      const T db = slice[i + half];
      out[pair.a] = da * cos[i] + db * sin[i];
      out[pair.b] = db * cos[i] - da * sin[i];
    }
  }
  if (out != in) std::copy(in + rot_dim, in + head_dim, out + rot_dim);
}

template <typename T>
void rope_apply(const char* op, T* out, const T* in, const RopeTable<T>& table,
                const std::int64_t* positions, std::int64_t tokens, std::int64_t heads,
                std::int64_t head_dim, RopeLayout layout, bool forward) {
  check_rope_shape(op, table.rot_dim, table.num_positions, positions, tokens, heads, head_dim);
  const std::int64_t half = table.rot_dim / 2;
  std::vector<T> slice;
  for (std::int64_t t = 0; t < tokens; ++t) {
    const T* cos = table.cos.data() + positions[t] * half;
    const T* sin = table.sin.data() + positions[t] * half;
    for (std::int64_t h = 0; h < heads; ++h) {
      const std::int64_t offset = (t * heads + h) * head_dim;
      rotate_head(out + offset, in + offset, cos, sin, table.rot_dim, head_dim, layout, forward,
                  slice);
    }
  }
}

}  // namespace

template <typename T>
void rope_forward(T* out, const T* x, const RopeTable<T>& table, const std::int64_t* positions,
                  std::int64_t tokens, std::int64_t heads, std::int64_t head_dim,
                  RopeLayout layout) {
  rope_apply("rope_forward", out, x, table, positions, tokens, heads, head_dim, layout, true);
}

template <typename T>
void rope_backward(T* dx, const T* dout, const RopeTable<T>& table, const std::int64_t* positions,
                   std::int64_t tokens, std::int64_t heads, std::int64_t head_dim,
                   RopeLayout layout) {
  rope_apply("rope_backward", dx, dout, table, positions, tokens, heads, head_dim, layout, false);
}

#define MOEBENCH_INSTANTIATE_ROPE(T)                                                     \
  template void rope_forward<T>(T*, const T*, const RopeTable<T>&, const std::int64_t*,  \
                                std::int64_t, std::int64_t, std::int64_t, RopeLayout);   \
  template void rope_backward<T>(T*, const T*, const RopeTable<T>&, const std::int64_t*, \
                                 std::int64_t, std::int64_t, std::int64_t, RopeLayout);
MOEBENCH_INSTANTIATE_ROPE(float)
MOEBENCH_INSTANTIATE_ROPE(double)
#undef MOEBENCH_INSTANTIATE_ROPE

}  // namespace moebench::ops::cpu
