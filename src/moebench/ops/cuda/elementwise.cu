// Element-wise and copy kernels of the model (see ops/elementwise.h): residual
// sums, dtype casts, column copies, gradient scaling and squared norms, and
// Qwen2-MoE's sigmoid gate on the shared experts. bf16 storage, fp32 math.
// Kernels (version 1): grid-stride loops, one element per thread; the gate
// runs one block per token for its dot products and one thread per column
// for the weight gradient (a fixed-order sum over the tokens). Column copies
// (version 2): one thread per 16-byte unit where the layout allows, instead
// of cudaMemcpy2DAsync, whose narrow rows (MLA's 128-byte rope columns over
// tokens x heads rows) the copy engines move slowly.
// Build: nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Isrc -c src/moebench/ops/cuda/elementwise.cu
// Checked through tests/gpu/model_gpu_test.cpp (the model against the CPU engine).
#include <algorithm>

#include "moebench/core/cuda_check.h"
#include "moebench/ops/cuda/block_reduce.cuh"
#include "moebench/ops/elementwise.h"

namespace moebench::ops::cuda {
namespace {

constexpr int kThreads = 256;

unsigned grid_for(std::int64_t n) {
  return unsigned(std::clamp<std::int64_t>((n + kThreads - 1) / kThreads, 1, 8192));
}

#define MOEBENCH_GRID_STRIDE(i, n) \
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += std::int64_t(gridDim.x) * blockDim.x)

__global__ void add_bf16_kernel(__nv_bfloat16* target, const __nv_bfloat16* addend, std::int64_t n) {
  MOEBENCH_GRID_STRIDE(i, n) target[i] = __float2bfloat16(__bfloat162float(target[i]) + __bfloat162float(addend[i]));
}
__global__ void add_f32_kernel(float* target, const float* addend, std::int64_t n) {
  MOEBENCH_GRID_STRIDE(i, n) target[i] += addend[i];
}
__global__ void scale_kernel(float* values, double factor, std::int64_t n) {
  MOEBENCH_GRID_STRIDE(i, n) values[i] = float(double(values[i]) * factor);
}
__global__ void fill_bf16_kernel(__nv_bfloat16* values, float value, std::int64_t n) {
  MOEBENCH_GRID_STRIDE(i, n) values[i] = __float2bfloat16(value);
}
__global__ void cast_f32_bf16_kernel(__nv_bfloat16* out, const float* inp, std::int64_t n) {
  MOEBENCH_GRID_STRIDE(i, n) out[i] = __float2bfloat16(inp[i]);
}
__global__ void cast_bf16_f32_kernel(float* out, const __nv_bfloat16* inp, std::int64_t n) {
  MOEBENCH_GRID_STRIDE(i, n) out[i] = __bfloat162float(inp[i]);
}
__global__ void cast_i64_i32_kernel(std::int32_t* out, const std::int64_t* inp, std::int64_t n) {
  MOEBENCH_GRID_STRIDE(i, n) out[i] = std::int32_t(inp[i]);
}
// One thread per Unit of a row of `units_per_row`: rows are `dst_pitch` and
// `src_pitch` bytes apart.
template <typename Unit>
__global__ void copy_columns_kernel(char* dst, std::int64_t dst_pitch, const char* src, std::int64_t src_pitch,
                                    std::int64_t units_per_row, std::int64_t total) {
  MOEBENCH_GRID_STRIDE(i, total) {
    const std::int64_t row = i / units_per_row, unit = i % units_per_row;
    reinterpret_cast<Unit*>(dst + row * dst_pitch)[unit] = reinterpret_cast<const Unit*>(src + row * src_pitch)[unit];
  }
}

template <typename Unit>
void launch_copy_columns(char* dst, std::int64_t dst_pitch, const char* src, std::int64_t src_pitch,
                         std::int64_t rows, std::int64_t row_bytes, cudaStream_t stream) {
  const std::int64_t units_per_row = row_bytes / std::int64_t(sizeof(Unit)), total = rows * units_per_row;
  copy_columns_kernel<Unit><<<grid_for(total), kThreads, 0, stream>>>(dst, dst_pitch, src, src_pitch, units_per_row,
                                                                      total);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

__global__ void add_columns_kernel(__nv_bfloat16* dst, std::int64_t dst_width, std::int64_t dst_col,
                                   const __nv_bfloat16* src, std::int64_t src_width, std::int64_t src_col,
                                   std::int64_t rows, std::int64_t count) {
  MOEBENCH_GRID_STRIDE(i, rows * count) {
    const std::int64_t r = i / count, c = i % count;
    __nv_bfloat16& d = dst[r * dst_width + dst_col + c];
    d = __float2bfloat16(__bfloat162float(d) + __bfloat162float(src[r * src_width + src_col + c]));
  }
}
__global__ void sum_of_squares_kernel(double* total, const float* values, std::int64_t n) {
  float local = 0;
  MOEBENCH_GRID_STRIDE(i, n) local += values[i] * values[i];
  const float block = block_sum(local);
  if (threadIdx.x == 0) atomicAdd(total, double(block));
}

__device__ inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

// One block per token.
__global__ void gate_forward_kernel(__nv_bfloat16* out, float* gate, const __nv_bfloat16* inp,
                                    const __nv_bfloat16* weight, const __nv_bfloat16* mlp_out, std::int64_t hidden) {
  const std::int64_t t = blockIdx.x;
  float partial = 0;
  for (std::int64_t c = threadIdx.x; c < hidden; c += blockDim.x)
    partial += __bfloat162float(inp[t * hidden + c]) * __bfloat162float(weight[c]);
  const float g = sigmoidf(block_sum(partial));
  if (threadIdx.x == 0) gate[t] = g;
  for (std::int64_t c = threadIdx.x; c < hidden; c += blockDim.x)
    out[t * hidden + c] = __float2bfloat16(g * __bfloat162float(mlp_out[t * hidden + c]));
}

__global__ void gate_backward_kernel(__nv_bfloat16* dmlp_out, float* dlogit, const __nv_bfloat16* dout,
                                     const __nv_bfloat16* mlp_out, const float* gate, std::int64_t hidden) {
  const std::int64_t t = blockIdx.x;
  const float g = gate[t];
  float partial = 0;
  for (std::int64_t c = threadIdx.x; c < hidden; c += blockDim.x) {
    const float d = __bfloat162float(dout[t * hidden + c]);
    dmlp_out[t * hidden + c] = __float2bfloat16(g * d);
    partial += d * __bfloat162float(mlp_out[t * hidden + c]);
  }
  const float dgate = block_sum(partial);
  if (threadIdx.x == 0) dlogit[t] = dgate * g * (1 - g);
}

// One thread per column, tokens summed in order.
__global__ void gate_weight_grad_kernel(float* dweight, const float* dlogit, const __nv_bfloat16* inp, std::int64_t n,
                                        std::int64_t hidden) {
  const std::int64_t c = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= hidden) return;
  float sum = 0;
  for (std::int64_t t = 0; t < n; ++t) sum += dlogit[t] * __bfloat162float(inp[t * hidden + c]);
  dweight[c] += sum;
}

__global__ void gate_input_grad_kernel(__nv_bfloat16* dinp, const float* dlogit, const __nv_bfloat16* weight,
                                       std::int64_t n, std::int64_t hidden) {
  MOEBENCH_GRID_STRIDE(i, n * hidden) {
    const std::int64_t t = i / hidden, c = i % hidden;
    dinp[i] = __float2bfloat16(__bfloat162float(dinp[i]) + dlogit[t] * __bfloat162float(weight[c]));
  }
}

}  // namespace

#define MOEBENCH_LAUNCH(kernel, n, ...)                                   \
  do {                                                                     \
    if ((n) <= 0) return;                                                  \
    kernel<<<grid_for(n), kThreads, 0, stream>>>(__VA_ARGS__);             \
    MOEBENCH_CUDA_CHECK(cudaGetLastError());                               \
  } while (0)

void add(__nv_bfloat16* target, const __nv_bfloat16* addend, std::int64_t n, cudaStream_t stream) {
  MOEBENCH_LAUNCH(add_bf16_kernel, n, target, addend, n);
}
void add(float* target, const float* addend, std::int64_t n, cudaStream_t stream) {
  MOEBENCH_LAUNCH(add_f32_kernel, n, target, addend, n);
}
void scale(float* values, double factor, std::int64_t n, cudaStream_t stream) {
  MOEBENCH_LAUNCH(scale_kernel, n, values, factor, n);
}
void fill(__nv_bfloat16* values, float value, std::int64_t n, cudaStream_t stream) {
  MOEBENCH_LAUNCH(fill_bf16_kernel, n, values, value, n);
}
void cast(__nv_bfloat16* out, const float* inp, std::int64_t n, cudaStream_t stream) {
  MOEBENCH_LAUNCH(cast_f32_bf16_kernel, n, out, inp, n);
}
void cast(float* out, const __nv_bfloat16* inp, std::int64_t n, cudaStream_t stream) {
  MOEBENCH_LAUNCH(cast_bf16_f32_kernel, n, out, inp, n);
}
void cast(std::int32_t* out, const std::int64_t* inp, std::int64_t n, cudaStream_t stream) {
  MOEBENCH_LAUNCH(cast_i64_i32_kernel, n, out, inp, n);
}

void copy_columns(void* dst, std::int64_t dst_width, std::int64_t dst_col, const void* src, std::int64_t src_width,
                  std::int64_t src_col, std::int64_t rows, std::int64_t count, std::int64_t element_bytes,
                  cudaStream_t stream) {
  if (rows <= 0 || count <= 0) return;
  char* d = static_cast<char*>(dst) + dst_col * element_bytes;
  const char* s = static_cast<const char*>(src) + src_col * element_bytes;
  const std::int64_t dst_pitch = dst_width * element_bytes, src_pitch = src_width * element_bytes;
  const std::int64_t row_bytes = count * element_bytes;
  const std::uint64_t widths = reinterpret_cast<std::uintptr_t>(d) | reinterpret_cast<std::uintptr_t>(s) |
                               std::uint64_t(dst_pitch) | std::uint64_t(src_pitch) | std::uint64_t(row_bytes);
  if (widths % 16 == 0) return launch_copy_columns<uint4>(d, dst_pitch, s, src_pitch, rows, row_bytes, stream);
  if (widths % 8 == 0) return launch_copy_columns<uint2>(d, dst_pitch, s, src_pitch, rows, row_bytes, stream);
  if (widths % 4 == 0) return launch_copy_columns<std::uint32_t>(d, dst_pitch, s, src_pitch, rows, row_bytes, stream);
  if (widths % 2 == 0) return launch_copy_columns<std::uint16_t>(d, dst_pitch, s, src_pitch, rows, row_bytes, stream);
  launch_copy_columns<std::uint8_t>(d, dst_pitch, s, src_pitch, rows, row_bytes, stream);
}

void add_columns(__nv_bfloat16* dst, std::int64_t dst_width, std::int64_t dst_col, const __nv_bfloat16* src,
                 std::int64_t src_width, std::int64_t src_col, std::int64_t rows, std::int64_t count,
                 cudaStream_t stream) {
  MOEBENCH_LAUNCH(add_columns_kernel, rows * count, dst, dst_width, dst_col, src, src_width, src_col, rows, count);
}

void accumulate_sum_of_squares(double* total, const float* values, std::int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  sum_of_squares_kernel<<<unsigned(std::clamp<std::int64_t>((n + kThreads - 1) / kThreads, 1, 1024)), kThreads, 0,
                          stream>>>(total, values, n);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

void sigmoid_gate_forward(__nv_bfloat16* out, float* gate, const __nv_bfloat16* inp, const __nv_bfloat16* weight,
                          const __nv_bfloat16* mlp_out, std::int64_t n, std::int64_t hidden, cudaStream_t stream) {
  if (n <= 0) return;
  gate_forward_kernel<<<unsigned(n), kThreads, 0, stream>>>(out, gate, inp, weight, mlp_out, hidden);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

void sigmoid_gate_backward(__nv_bfloat16* dmlp_out, float* dlogit, float* dweight, const __nv_bfloat16* dout,
                           const __nv_bfloat16* inp, const __nv_bfloat16* mlp_out, const float* gate,
                           std::int64_t n, std::int64_t hidden, cudaStream_t stream) {
  if (n <= 0) return;
  gate_backward_kernel<<<unsigned(n), kThreads, 0, stream>>>(dmlp_out, dlogit, dout, mlp_out, gate, hidden);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
  gate_weight_grad_kernel<<<unsigned((hidden + kThreads - 1) / kThreads), kThreads, 0, stream>>>(dweight, dlogit,
                                                                                              inp, n, hidden);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

void sigmoid_gate_input_backward(__nv_bfloat16* dinp, const float* dlogit, const __nv_bfloat16* weight,
                                 std::int64_t n, std::int64_t hidden, cudaStream_t stream) {
  MOEBENCH_LAUNCH(gate_input_grad_kernel, n * hidden, dinp, dlogit, weight, n, hidden);
}

}  // namespace moebench::ops::cuda
