#pragma once
// Rotary position embeddings (RoPE), with YaRN context extension, as Hugging
// Face transformers computes them for Llama, Mixtral, Qwen2/3-MoE and
// DeepSeek-V2/V3. All arrays are row-major and contiguous. Forward and
// backward take their arguments in the same order; activation gradients are
// written (=).
#include <cstdint>

#include <optional>
#include <vector>

#include "moebench/core/tensor.h"

namespace moebench::ops {

// YaRN (HF rope_scaling {"type": "yarn", ...}). Frequencies with fewer than
// beta_slow rotations over the original context are interpolated (divided by
// `factor`), those with more than beta_fast are kept, and a linear ramp over
// the (floored, ceiled) correction dimensions blends the two in between.
struct YarnScaling {
  double factor = 1.0;                      // rope_scaling.factor (DeepSeek-V2: 40)
  std::int64_t original_max_positions = 0;  // rope_scaling.original_max_position_embeddings
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 0.0;          // 0 means absent, as HF treats a missing key
  double mscale_all_dim = 0.0;  // 0 means absent
};

// DeepSeek's yarn_get_mscale: 0.1 * mscale * ln(factor) + 1, or 1 when factor <= 1.
double yarn_mscale(double factor, double mscale);

// The factor HF multiplies cos and sin by: yarn_mscale(factor, mscale) /
// yarn_mscale(factor, mscale_all_dim) when both are set, else
// yarn_mscale(factor, 1).
double yarn_attention_factor(const YarnScaling& yarn);

// Softmax scale of multi-latent attention as DeepSeek, Megatron and HF
// DeepSeek-V3 define it: 1/sqrt(qk_head_dim), times
// yarn_mscale(factor, mscale_all_dim)^2 when YaRN sets mscale_all_dim.
// (HF's DeepseekV2Attention uses 1/sqrt(qk_head_dim) alone.)
double mla_softmax_scale(std::int64_t qk_head_dim, const std::optional<YarnScaling>& yarn);

// cos and sin of position * inv_freq[i] for positions 0..num_positions-1 and
// the rot_dim/2 frequencies, YaRN's attention factor already multiplied in.
// Computed in double and rounded to T once (HF computes in float32; the two
// agree to float rounding times the position).
template <typename T>
struct RopeTable {
  // rot_dim = int(head_dim * rotary_percent), which must be even and > 0;
  // base is rope_theta.
  RopeTable(std::int64_t head_dim, double base, std::int64_t num_positions,
            double rotary_percent = 1.0, const std::optional<YarnScaling>& yarn = std::nullopt);

  std::int64_t rot_dim;
  std::int64_t num_positions;
  std::vector<T> cos;  // [num_positions, rot_dim / 2]
  std::vector<T> sin;  // [num_positions, rot_dim / 2]
};

// Which channels of a head's first rot_dim form a rotated pair. The output is
// always in the half layout, with h = rot_dim / 2:
//   out[i] = a * cos - b * sin,  out[i + h] = b * cos + a * sin.
enum class RopeLayout {
  kHalf,         // (a, b) = (x[i], x[i + h]): HF rotate_half (Llama, Mixtral, Qwen)
  kInterleaved,  // (a, b) = (x[2i], x[2i + 1]): DeepSeek, which first permutes
                 // the pairs into the half layout as HF does
                 // (view(h, 2).transpose(-1, -2)), so the output is permuted
};

}  // namespace moebench::ops

namespace moebench::ops::cpu {

// out[tokens, heads, head_dim] = x rotated by the angle of positions[token];
// channels from rot_dim on are copied. out may alias x.
// Instantiated for float and double.
template <typename T>
void rope_forward(T* out, const T* x, const RopeTable<T>& table, const std::int64_t* positions,
                  std::int64_t tokens, std::int64_t heads, std::int64_t head_dim,
                  RopeLayout layout);

// dx = the transposed rotation of dout (and, for kInterleaved, the inverse
// permutation). dx may alias dout.
template <typename T>
void rope_backward(T* dx, const T* dout, const RopeTable<T>& table, const std::int64_t* positions,
                   std::int64_t tokens, std::int64_t heads, std::int64_t head_dim,
                   RopeLayout layout);

}  // namespace moebench::ops::cpu

#ifdef MOEBENCH_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace moebench::ops::cuda {

// A RopeTable<float> uploaded to the device: cos and sin [num_positions, rot_dim / 2].
struct RopeTableView {
  const float* cos = nullptr;
  const float* sin = nullptr;
  std::int64_t rot_dim = 0;
  std::int64_t num_positions = 0;
};

// out[tokens, heads, head_dim] bf16 = x rotated by the angle of positions[token]
// (int64 on the device), fp32 math; channels from rot_dim on are copied.
// out may be x (in place). rot_dim must be even and at most 256. The GPU cannot
// throw, so a position outside the table gives NaN in the rotated channels.
void rope_forward(__nv_bfloat16* out, const __nv_bfloat16* x, const RopeTableView& table,
                  const std::int64_t* positions, std::int64_t tokens, std::int64_t heads,
                  std::int64_t head_dim, RopeLayout layout, cudaStream_t stream);

// dx = the transposed rotation of dout (and, for kInterleaved, the inverse
// permutation); dx may be dout.
void rope_backward(__nv_bfloat16* dx, const __nv_bfloat16* dout, const RopeTableView& table,
                   const std::int64_t* positions, std::int64_t tokens, std::int64_t heads,
                   std::int64_t head_dim, RopeLayout layout, cudaStream_t stream);

}  // namespace moebench::ops::cuda
#endif  // MOEBENCH_WITH_CUDA

namespace moebench::ops {

// Tensor-level ops: check shapes, dtypes and devices, then dispatch on the
// device (CPU f32/f64 -> ops::cpu, CUDA bf16 -> ops::cuda on ops::current_stream()).
// The table as the Tensor-level ops take it: the host table, and on CUDA its
// fp32 cos and sin [num_positions, rot_dim / 2] on the device.
struct RopeTableTensors {
  const RopeTable<float>* host = nullptr;
  Tensor cos, sin;  // undefined on the CPU
};
// x [tokens, heads, head_dim] (rows = numel / head_dim), positions i64 [tokens]
// on x's device (host for the CPU). out may be x.
void rope_forward(Tensor& out, const Tensor& x, const RopeTableTensors& table, const Tensor& positions,
                  std::int64_t head_dim, RopeLayout layout);
void rope_backward(Tensor& dx, const Tensor& dout, const RopeTableTensors& table, const Tensor& positions,
                   std::int64_t head_dim, RopeLayout layout);

#ifdef MOEBENCH_WITH_CUDA
// The device table of `table`, checked (fp32, on x's device, the host
// table's size) for the CUDA kernels of `op`.
cuda::RopeTableView device_table_view(const char* op, const RopeTableTensors& table, const Tensor& x);
#endif

}  // namespace moebench::ops
