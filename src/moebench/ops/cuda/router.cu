// The fused MoE router on the GPU (see ops/router.h for the semantics):
//   forward   logits[N, E] fp32 (+ expert_bias[E]) -> indices[N, k] int64 and
//             probs[N, k] fp32; accumulates aux_counts[S, E] int32,
//             aux_score_sums[S, E] fp32 and z_loss_sum[1] fp32
//   backward  dprobs[N, k] (+ aux_counts, loss_scale) -> dlogits[N, E] fp32,
//             recomputing the scores from the logits instead of saving them
//   loss      the aux + z loss scalar from the statistics, on the device
// E <= 256, k <= 8, num_groups <= 8.
// Kernels (version 1 of each):
//   router_forward_kernel   one warp per token row; lane l holds experts l, l+32, ...
//                           (E/32 rounded up to 1, 2, 4 or 8 registers), so each
//                           load is one coalesced 128-byte line. Softmax / sigmoid
//                           and the group scores are warp reductions; top-k is k
//                           rounds of a warp arg-max on (value desc, index asc), the
//                           CPU's order (warp_topk.cuh). Blocks never straddle a sequence, so each
//                           warp keeps its statistics in registers and the block
//                           adds them once to shared memory, then once to global
//                           memory (E atomics per block instead of per token).
//   router_backward_kernel  one warp per row: d probs through the weight
//                           function onto the chosen experts' logits, plus the
//                           dense aux and z gradients, one coalesced store per register.
//   router_loss_kernel      one block: sum over S*E of counts * sums.
// Build: nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Isrc -c src/moebench/ops/cuda/router.cu
// Check and time: tests/gpu/router_test.cpp (RouterTiming.* prints microseconds and GB/s).
#include <algorithm>
#include <string>

#include "moebench/core/cuda_check.h"
#include "moebench/core/error.h"
#include "moebench/ops/cuda/block_reduce.cuh"
#include "moebench/ops/cuda/warp_topk.cuh"
#include "moebench/ops/router.h"

namespace moebench::ops::cuda {
namespace {

using namespace warp_select;  // the warp-per-row top-k of warp_topk.cuh

constexpr int kMaxExperts = 256;
constexpr int kWarpsPerBlock = 8;
constexpr int kThreads = kWarpsPerBlock * kWarpSize;
constexpr int kBlocksPerSm = 2;  // forward: fewer blocks, fewer statistics atomics
constexpr float kNormaliseEps = 1e-20f;

// RouterConfig and the sizes, as the kernels read them.
struct RoutingParams {
  int experts = 0, topk = 0, groups = 0, group_topk = 0, group_size = 1;
  bool softmax = true, pre_softmax = false, top2_group_score = false;
  bool aux = false, z_loss = false;
  float scaling_factor = 1.0f;
  std::int64_t tokens = 0, tokens_per_sequence = 1;
};

RoutingParams routing_params(std::int64_t tokens, std::int64_t tokens_per_sequence,
                             const RouterConfig& config) {
  RoutingParams p;
  p.experts = int(config.num_experts);
  p.topk = int(config.topk);
  p.groups = int(config.num_groups);
  p.group_topk = int(config.group_topk);
  p.group_size = config.num_groups > 0 ? int(config.num_experts / config.num_groups) : 1;
  p.softmax = config.score_function == RouterScoreFunction::kSoftmax;
  p.pre_softmax = config.pre_softmax;
  p.top2_group_score = config.group_score == GroupScore::kTop2Sum;
  p.aux = config.aux_loss_coeff > 0;
  p.z_loss = config.z_loss_coeff > 0;
  p.scaling_factor = config.scaling_factor;
  p.tokens = tokens;
  p.tokens_per_sequence = tokens_per_sequence;
  return p;
}

// The scores of one row of logits, V per lane (bit i of `valid`: slot i
// holds an expert): the softmax over all experts when the router, the aux
// loss or the z-loss needs it (with its max and sum for the log-sum-exp),
// else zeros; the sigmoid of each logit for a sigmoid router, else zeros.
template <int V>
__device__ __forceinline__ void row_scores(const float (&l)[V], unsigned valid, const RoutingParams& p,
                                           float& row_max, float& exp_sum, float (&soft)[V], float (&sig)[V]) {
  row_max = -INFINITY;
  exp_sum = 0.0f;
#pragma unroll
  for (int i = 0; i < V; ++i) soft[i] = sig[i] = 0.0f;
  if (p.softmax || p.z_loss) {
#pragma unroll
    for (int i = 0; i < V; ++i) row_max = fmaxf(row_max, l[i]);
    row_max = warp_max(row_max);
#pragma unroll
    for (int i = 0; i < V; ++i) {
      soft[i] = (valid >> i) & 1u ? expf(l[i] - row_max) : 0.0f;
      exp_sum += soft[i];
    }
    exp_sum = warp_sum(exp_sum);
#pragma unroll
    for (int i = 0; i < V; ++i) soft[i] /= exp_sum;
  }
  if (!p.softmax) {
#pragma unroll
    for (int i = 0; i < V; ++i) sig[i] = 1.0f / (1.0f + expf(-l[i]));
  }
}

template <int V>
__global__ void __launch_bounds__(kThreads)
    router_forward_kernel(std::int64_t* __restrict__ indices, float* __restrict__ probs,
                          RouterStatistics statistics, const float* __restrict__ logits,
                          const float* __restrict__ expert_bias, RoutingParams p) {
  __shared__ int block_counts[kMaxExperts];
  __shared__ float block_score_sums[kMaxExperts];
  __shared__ float block_z_sum;
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const int k = p.topk;
  const std::int64_t sequence = blockIdx.y;

  for (int e = threadIdx.x; e < p.experts; e += blockDim.x) {
    block_counts[e] = 0;
    block_score_sums[e] = 0.0f;
  }
  if (threadIdx.x == 0) block_z_sum = 0.0f;
  __syncthreads();

  // What this lane's registers stand for never changes from row to row.
  unsigned valid = 0;
  int group_of[V];
  float bias[V];
#pragma unroll
  for (int i = 0; i < V; ++i) {
    const int expert = i * kWarpSize + lane;
    if (expert < p.experts) valid |= 1u << i;
    group_of[i] = expert / p.group_size;
    bias[i] = expert_bias != nullptr && expert < p.experts ? expert_bias[expert] : 0.0f;
  }
  int count[V] = {};
  float score_sum[V] = {};
  float z_sum = 0.0f;

  for (std::int64_t r = std::int64_t(blockIdx.x) * kWarpsPerBlock + warp; r < p.tokens_per_sequence;
       r += std::int64_t(gridDim.x) * kWarpsPerBlock) {
    const std::int64_t row = sequence * p.tokens_per_sequence + r;
    float l[V];
#pragma unroll
    for (int i = 0; i < V; ++i)
      l[i] = (valid >> i) & 1u ? logits[row * p.experts + i * kWarpSize + lane] : -INFINITY;

    // Softmax over all experts (for the scores, the aux loss or the z-loss).
    float row_max, exp_sum, soft[V], sig[V];
    row_scores<V>(l, valid, p, row_max, exp_sum, soft, sig);

    // Selection scores: logits, softmax scores, or sigmoid scores + bias.
    float selection[V];
#pragma unroll
    for (int i = 0; i < V; ++i)
      selection[i] = p.softmax ? (p.pre_softmax ? soft[i] : l[i]) : sig[i] + bias[i];
    unsigned allowed = valid;
    if (p.groups > 0) {
      const unsigned kept = kept_groups(selection, group_of, valid, p.groups, p.group_topk, p.top2_group_score);
#pragma unroll
      for (int i = 0; i < V; ++i)
        if (((valid >> i) & 1u) && !((kept >> group_of[i]) & 1u)) allowed &= ~(1u << i);
    }
    int chosen[kMaxTopk] = {};
    float weight[kMaxTopk] = {};
    warp_topk(chosen, weight, selection, allowed, k, lane);

    // Routing weights, in the CPU's order of operations.
    if (p.softmax && !p.pre_softmax) {
      const float top = weight[0];  // the largest chosen logit
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < kMaxTopk; ++j)
        if (j < k) {
          weight[j] = expf(weight[j] - top);
          sum += weight[j];
        }
#pragma unroll
      for (int j = 0; j < kMaxTopk; ++j) weight[j] /= sum;
    } else if (!p.softmax) {
      float sum = kNormaliseEps;
#pragma unroll
      for (int j = 0; j < kMaxTopk; ++j)
        if (j < k) {
          if (expert_bias != nullptr) weight[j] = value_of_expert(sig, chosen[j]);
          sum += weight[j];
        }
      if (k > 1) {
#pragma unroll
        for (int j = 0; j < kMaxTopk; ++j) weight[j] /= sum;
      }
    }
    std::int64_t my_index = 0;
    float my_prob = 0.0f;
#pragma unroll
    for (int j = 0; j < kMaxTopk; ++j)
      if (j == lane) {
        my_index = chosen[j];
        my_prob = weight[j] * p.scaling_factor;
      }
    if (lane < k) {
      indices[row * k + lane] = my_index;
      probs[row * k + lane] = my_prob;
    }

    if (p.aux) {
      // Aux scores p: the softmax, or the sigmoid normalised over all experts when k > 1.
      float aux[V];
      if (p.softmax) {
#pragma unroll
        for (int i = 0; i < V; ++i) aux[i] = soft[i];
      } else {
        float sig_sum = 0.0f;
#pragma unroll
        for (int i = 0; i < V; ++i) sig_sum += (valid >> i) & 1u ? sig[i] : 0.0f;
        sig_sum = warp_sum(sig_sum) + kNormaliseEps;
#pragma unroll
        for (int i = 0; i < V; ++i) aux[i] = k > 1 ? sig[i] / sig_sum : sig[i];
      }
      // The plain top-k of p is the routing's own choice only for pre-softmax without groups.
      if (!(p.softmax && p.pre_softmax && p.groups == 0)) warp_topk(chosen, weight, aux, valid, k, lane);
#pragma unroll
      for (int j = 0; j < kMaxTopk; ++j) {
        if (j >= k) break;
#pragma unroll
        for (int i = 0; i < V; ++i)
          if (chosen[j] == i * kWarpSize + lane) ++count[i];
      }
#pragma unroll
      for (int i = 0; i < V; ++i)
        if ((valid >> i) & 1u) score_sum[i] += aux[i];
    }
    if (p.z_loss) {
      const float lse = row_max + logf(exp_sum);
      z_sum += lse * lse;
    }
  }

  // Registers -> shared memory -> global memory, once per block.
  if (p.aux) {
#pragma unroll
    for (int i = 0; i < V; ++i) {
      if (!((valid >> i) & 1u)) continue;
      if (count[i] != 0) atomicAdd(&block_counts[i * kWarpSize + lane], count[i]);
      atomicAdd(&block_score_sums[i * kWarpSize + lane], score_sum[i]);
    }
  }
  if (p.z_loss && lane == 0) atomicAdd(&block_z_sum, z_sum);
  __syncthreads();
  if (p.aux) {
    for (int e = threadIdx.x; e < p.experts; e += blockDim.x) {
      if (block_counts[e] != 0) atomicAdd(&statistics.aux_counts[sequence * p.experts + e], block_counts[e]);
      atomicAdd(&statistics.aux_score_sums[sequence * p.experts + e], block_score_sums[e]);
    }
  }
  if (p.z_loss && threadIdx.x == 0) atomicAdd(statistics.z_loss_sum, block_z_sum);
}

template <int V>
__global__ void __launch_bounds__(kThreads)
    router_backward_kernel(float* __restrict__ dlogits, const float* __restrict__ dprobs,
                           const float* __restrict__ logits, const std::int64_t* __restrict__ indices,
                           const std::int32_t* __restrict__ aux_counts, RoutingParams p,
                           float loss_scale, float aux_dscore_per_count, float z_dlse_per_lse) {
  const int lane = threadIdx.x % kWarpSize;
  const int k = p.topk;
  unsigned valid = 0;
#pragma unroll
  for (int i = 0; i < V; ++i)
    if (i * kWarpSize + lane < p.experts) valid |= 1u << i;

  const std::int64_t row = (std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / kWarpSize;
  if (row >= p.tokens) return;  // the whole warp leaves together
  float l[V], dl[V];
#pragma unroll
  for (int i = 0; i < V; ++i) {
    l[i] = (valid >> i) & 1u ? logits[row * p.experts + i * kWarpSize + lane] : -INFINITY;
    dl[i] = 0.0f;
  }
  int chosen[kMaxTopk];
  float dvalue[kMaxTopk];
  const int my_expert = lane < k ? int(indices[row * k + lane]) : 0;
  const float my_dprob = lane < k ? dprobs[row * k + lane] * p.scaling_factor : 0.0f;
#pragma unroll
  for (int j = 0; j < kMaxTopk; ++j) {
    chosen[j] = __shfl_sync(kFullMask, my_expert, j);
    dvalue[j] = __shfl_sync(kFullMask, my_dprob, j);
  }

  float row_max, exp_sum, soft[V], sig[V];
  row_scores<V>(l, valid, p, row_max, exp_sum, soft, sig);

  // d probs through the weight function, onto the chosen experts.
  if (p.softmax && !p.pre_softmax) {
    float a[kMaxTopk], top_max = -INFINITY, sum = 0.0f, dot = 0.0f;
#pragma unroll
    for (int j = 0; j < kMaxTopk; ++j) {
      a[j] = j < k ? value_of_expert(l, chosen[j]) : -INFINITY;
      top_max = fmaxf(top_max, a[j]);
    }
#pragma unroll
    for (int j = 0; j < kMaxTopk; ++j)
      if (j < k) {
        a[j] = expf(a[j] - top_max);
        sum += a[j];
      }
#pragma unroll
    for (int j = 0; j < kMaxTopk; ++j)
      if (j < k) {
        a[j] /= sum;
        dot += dvalue[j] * a[j];
      }
#pragma unroll
    for (int j = 0; j < kMaxTopk; ++j)
      if (j < k) add_to_expert(dl, chosen[j], a[j] * (dvalue[j] - dot), lane);
  } else if (p.softmax) {
    float dot = 0.0f;
#pragma unroll
    for (int j = 0; j < kMaxTopk; ++j)
      if (j < k) dot += dvalue[j] * value_of_expert(soft, chosen[j]);
#pragma unroll
    for (int i = 0; i < V; ++i) dl[i] = -soft[i] * dot;
#pragma unroll
    for (int j = 0; j < kMaxTopk; ++j)
      if (j < k) add_to_expert(dl, chosen[j], value_of_expert(soft, chosen[j]) * dvalue[j], lane);
  } else {
    float s[kMaxTopk], z = kNormaliseEps, dot = 0.0f;
#pragma unroll
    for (int j = 0; j < kMaxTopk; ++j)
      if (j < k) {
        s[j] = value_of_expert(sig, chosen[j]);
        z += s[j];
      }
#pragma unroll
    for (int j = 0; j < kMaxTopk; ++j)
      if (j < k) dot += dvalue[j] * (k > 1 ? s[j] / z : s[j]);
#pragma unroll
    for (int j = 0; j < kMaxTopk; ++j)
      if (j < k) {
        const float ds = k > 1 ? (dvalue[j] - dot) / z : dvalue[j];
        add_to_expert(dl, chosen[j], ds * s[j] * (1.0f - s[j]), lane);
      }
  }

  if (p.aux) {
    const std::int64_t sequence = row / p.tokens_per_sequence;
    float dscore[V], aux[V], dot = 0.0f;
    float sig_sum = kNormaliseEps;
    if (!p.softmax) {
      float local = 0.0f;
#pragma unroll
      for (int i = 0; i < V; ++i) local += (valid >> i) & 1u ? sig[i] : 0.0f;
      sig_sum += warp_sum(local);
    }
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const bool here = (valid >> i) & 1u;
      dscore[i] = here ? aux_dscore_per_count * float(aux_counts[sequence * p.experts + i * kWarpSize + lane]) : 0.0f;
      aux[i] = p.softmax ? soft[i] : (k > 1 ? sig[i] / sig_sum : sig[i]);
      dot += here ? dscore[i] * aux[i] : 0.0f;
    }
    dot = warp_sum(dot);
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const float daux = p.softmax ? aux[i] * (dscore[i] - dot)
                                   : (k > 1 ? (dscore[i] - dot) / sig_sum : dscore[i]) * sig[i] * (1.0f - sig[i]);
      dl[i] += loss_scale * daux;
    }
  }
  if (p.z_loss) {
    const float lse = row_max + logf(exp_sum);
#pragma unroll
    for (int i = 0; i < V; ++i) dl[i] += z_dlse_per_lse * lse * expf(l[i] - lse);
  }
#pragma unroll
  for (int i = 0; i < V; ++i)
    if ((valid >> i) & 1u) dlogits[row * p.experts + i * kWarpSize + lane] = dl[i];
}

__global__ void router_loss_kernel(float* loss, RouterStatistics statistics, std::int64_t cells,
                                   float aux_scale, float z_scale, bool aux, bool z_loss) {
  float sum = 0.0f;
  if (aux)
    for (std::int64_t i = threadIdx.x; i < cells; i += blockDim.x)
      sum += float(statistics.aux_counts[i]) * statistics.aux_score_sums[i];
  sum = block_sum(sum);
  if (threadIdx.x == 0) *loss = aux_scale * sum + (z_loss ? z_scale * *statistics.z_loss_sum : 0.0f);
}

void check_cuda_limits(const char* op, std::int64_t tokens, std::int64_t tokens_per_sequence,
                       const RouterConfig& config) {
  const std::string name(op);
  if (config.num_experts > kMaxExperts || config.topk > kMaxTopk || config.num_groups > kMaxGroups)
    throw Error(name + ": the CUDA router handles num_experts <= " + std::to_string(kMaxExperts) +
                ", topk <= " + std::to_string(kMaxTopk) + " and num_groups <= " +
                std::to_string(kMaxGroups) + "; got " + std::to_string(config.num_experts) + ", " +
                std::to_string(config.topk) + ", " + std::to_string(config.num_groups));
  if (tokens > 0 && tokens / tokens_per_sequence > 65535)
    throw Error(name + ": " + std::to_string(tokens / tokens_per_sequence) +
                " sequences exceed the grid's 65535; use aux_loss or longer sequences");
}

int multiprocessors() {
  int device = 0, count = 0;
  MOEBENCH_CUDA_CHECK(cudaGetDevice(&device));
  MOEBENCH_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return count;
}

// Registers per lane for E experts: E/32 rounded up to a power of two.
int experts_per_lane(std::int64_t experts) {
  int v = 1;
  while (v * kWarpSize < experts) v *= 2;
  return v;
}

template <int V>
void launch_router_forward(std::int64_t* indices, float* probs, const RouterStatistics& statistics,
                           const float* logits, const float* expert_bias, const RoutingParams& p,
                           cudaStream_t stream) {
  const std::int64_t sequences = p.tokens / p.tokens_per_sequence;
  const std::int64_t wanted = std::max<std::int64_t>(1, kBlocksPerSm * multiprocessors() / sequences);
  const std::int64_t needed = (p.tokens_per_sequence + kWarpsPerBlock - 1) / kWarpsPerBlock;
  const dim3 grid(unsigned(std::min(wanted, needed)), unsigned(sequences));
  router_forward_kernel<V><<<grid, kThreads, 0, stream>>>(indices, probs, statistics, logits, expert_bias, p);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

template <int V>
void launch_router_backward(float* dlogits, const float* dprobs, const float* logits,
                            const std::int64_t* indices, const std::int32_t* aux_counts,
                            const RoutingParams& p, float loss_scale, float aux_dscore_per_count,
                            float z_dlse_per_lse, cudaStream_t stream) {
  const unsigned blocks = unsigned((p.tokens + kWarpsPerBlock - 1) / kWarpsPerBlock);
  router_backward_kernel<V><<<blocks, kThreads, 0, stream>>>(dlogits, dprobs, logits, indices, aux_counts, p,
                                                              loss_scale, aux_dscore_per_count, z_dlse_per_lse);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

double aux_loss_scale(std::int64_t tokens, std::int64_t tokens_per_sequence, const RouterConfig& config) {
  const double length = double(tokens_per_sequence);
  return double(config.aux_loss_coeff) * double(config.num_experts) /
         (double(config.topk) * length * length * (double(tokens) / length));
}

}  // namespace

void router_forward(std::int64_t* indices, float* probs, const RouterStatistics& statistics,
                    const float* logits, const float* expert_bias, std::int64_t tokens,
                    std::int64_t tokens_per_sequence, const RouterConfig& config,
                    cudaStream_t stream) {
  check_router_arguments("cuda::router_forward", tokens, tokens_per_sequence, config, &statistics);
  check_cuda_limits("cuda::router_forward", tokens, tokens_per_sequence, config);
  if (tokens == 0) return;
  const RoutingParams p = routing_params(tokens, tokens_per_sequence, config);
  switch (experts_per_lane(config.num_experts)) {
    case 1: return launch_router_forward<1>(indices, probs, statistics, logits, expert_bias, p, stream);
    case 2: return launch_router_forward<2>(indices, probs, statistics, logits, expert_bias, p, stream);
    case 4: return launch_router_forward<4>(indices, probs, statistics, logits, expert_bias, p, stream);
    case 8: return launch_router_forward<8>(indices, probs, statistics, logits, expert_bias, p, stream);
  }
  throw Error("cuda::router_forward: unreachable experts per lane for num_experts " +
              std::to_string(config.num_experts));
}

void router_backward(float* dlogits, const float* dprobs, const float* logits,
                     const std::int64_t* indices, const std::int32_t* aux_counts,
                     std::int64_t tokens, std::int64_t tokens_per_sequence,
                     const RouterConfig& config, float loss_scale, cudaStream_t stream) {
  check_router_arguments("cuda::router_backward", tokens, tokens_per_sequence, config, nullptr);
  check_cuda_limits("cuda::router_backward", tokens, tokens_per_sequence, config);
  if (config.aux_loss_coeff > 0 && aux_counts == nullptr)
    throw Error("cuda::router_backward: aux_loss_coeff " + std::to_string(config.aux_loss_coeff) +
                " > 0 needs the forward's aux_counts");
  if (tokens == 0) return;
  const RoutingParams p = routing_params(tokens, tokens_per_sequence, config);
  const float aux_dscore_per_count = float(aux_loss_scale(tokens, tokens_per_sequence, config));
  const float z_dlse_per_lse = loss_scale * config.z_loss_coeff * 2.0f / float(tokens);
  switch (experts_per_lane(config.num_experts)) {
    case 1: return launch_router_backward<1>(dlogits, dprobs, logits, indices, aux_counts, p, loss_scale, aux_dscore_per_count, z_dlse_per_lse, stream);
    case 2: return launch_router_backward<2>(dlogits, dprobs, logits, indices, aux_counts, p, loss_scale, aux_dscore_per_count, z_dlse_per_lse, stream);
    case 4: return launch_router_backward<4>(dlogits, dprobs, logits, indices, aux_counts, p, loss_scale, aux_dscore_per_count, z_dlse_per_lse, stream);
    case 8: return launch_router_backward<8>(dlogits, dprobs, logits, indices, aux_counts, p, loss_scale, aux_dscore_per_count, z_dlse_per_lse, stream);
  }
  throw Error("cuda::router_backward: unreachable experts per lane for num_experts " +
              std::to_string(config.num_experts));
}

void router_auxiliary_loss(float* loss, const RouterStatistics& statistics, std::int64_t tokens,
                           std::int64_t tokens_per_sequence, const RouterConfig& config,
                           cudaStream_t stream) {
  check_router_arguments("cuda::router_auxiliary_loss", tokens, tokens_per_sequence, config, &statistics);
  const bool aux = config.aux_loss_coeff > 0 && tokens > 0;
  const bool z_loss = config.z_loss_coeff > 0 && tokens > 0;
  const std::int64_t cells = aux ? (tokens / tokens_per_sequence) * config.num_experts : 0;
  const float aux_scale = aux ? float(aux_loss_scale(tokens, tokens_per_sequence, config)) : 0.0f;
  const float z_scale = z_loss ? config.z_loss_coeff / float(tokens) : 0.0f;
  router_loss_kernel<<<1, 1024, 0, stream>>>(loss, statistics, cells, aux_scale, z_scale, aux, z_loss);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

}  // namespace moebench::ops::cuda
