// Dense GEMM through cuBLASLt: c[M,N] = op(a) @ op(b) (+ bias[N]) (+ addend)
// with bf16 a and b, fp32 accumulation, and a bf16 or fp32 result; the
// addend is cuBLASLt's C with beta = 1: c itself (accumulate) or, for a bf16
// result, a separate bf16 matrix (a residual). Row-major, layouts kNN / kNT /
// kTN as in ops/gemm.h.
//
// Version 1: cuBLASLt with one plan per (m, n, k, layout, output type,
// epilogue, addend: none, c itself or separate, pointer alignment), chosen
// by its heuristic once and cached in the device's GemmContext. No kernel of
// ours here: on dense shapes cuBLASLt runs at the H100's GEMM ceiling
// (775-794 TFLOP/s at 8192^3).
//
// Row-major to column-major: row-major C[M,N] = op(A) @ op(B) is run as the
// column-major product C^T[N,M] = op(B)^T @ op(A)^T on the same bytes, so
// cuBLASLt's first operand is our b, its second our a, its m is our n.
//
// Build: nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Isrc -c gemm.cu
// Check and time: tests/gpu/gemm_test.cpp (GemmTest.*, GemmTiming.Dense8192Cubed).
#include <cublasLt.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "moebench/core/cuda_check.h"
#include "moebench/ops/gemm.h"

namespace moebench::ops::cuda {
namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;
// Per-expert loops see a new m for every token count; past this many plans
// the cache starts over rather than growing without bound.
constexpr size_t kMaxCachedPlans = 4096;

// The largest power of two (up to 16) that divides the address: cuBLASLt's
// fast kernels need 16-byte operands, and a plan chosen for aligned pointers
// must not be reused for unaligned ones.
std::int64_t alignment_of(const void* pointer) {
  const auto address = reinterpret_cast<std::uintptr_t>(pointer);
  std::int64_t alignment = 16;
  while (alignment > 1 && address % alignment != 0) alignment /= 2;
  return alignment;
}

enum class OutputType : std::int64_t { kBf16, kF32 };

struct MatmulPlan {
  cublasLtMatmulDesc_t operation = nullptr;
  cublasLtMatrixLayout_t first = nullptr;   // cuBLASLt's A: our b
  cublasLtMatrixLayout_t second = nullptr;  // cuBLASLt's B: our a
  cublasLtMatrixLayout_t output = nullptr;  // C and D: our addend and c, transposed view
  cublasLtMatmulAlgo_t algorithm{};

  void destroy() {
    if (operation) cublasLtMatmulDescDestroy(operation);
    if (first) cublasLtMatrixLayoutDestroy(first);
    if (second) cublasLtMatrixLayoutDestroy(second);
    if (output) cublasLtMatrixLayoutDestroy(output);
  }
};

// (m, n, k, layout, output type, has bias, has addend, addend is c,
//  alignment of a, b, c, addend, bias)
using PlanKey = std::array<std::int64_t, 13>;

struct MatmulCall {
  void* c;
  const void* addend;  // cuBLASLt's C (beta = 1) in c's type and layout: c itself, apart from c, or nullptr
  const __nv_bfloat16* a;
  const __nv_bfloat16* b;
  const __nv_bfloat16* bias;
  std::int64_t m, n, k;
  GemmLayout layout;
  OutputType output_type;
};

const char* layout_name(GemmLayout layout) {
  switch (layout) {
    case GemmLayout::kNN: return "NN";
    case GemmLayout::kNT: return "NT";
    case GemmLayout::kTN: return "TN";
  }
  return "?";
}

}  // namespace

struct GemmContext::State {
  int device = 0;
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  std::mutex mutex;  // guards the plans and the bias pointer set on a shared descriptor
  std::map<PlanKey, MatmulPlan> plans;

  void clear_plans() {
    for (auto& [key, plan] : plans) plan.destroy();
    plans.clear();
  }

  MatmulPlan& plan_for(const MatmulCall& call) {
    const std::int64_t a_alignment = alignment_of(call.a), b_alignment = alignment_of(call.b);
    const std::int64_t c_alignment = alignment_of(call.c);
    // Without an addend cuBLASLt is handed c as C (never read: beta = 0).
    const std::int64_t addend_alignment = call.addend ? alignment_of(call.addend) : c_alignment;
    const PlanKey key{call.m,
                      call.n,
                      call.k,
                      static_cast<std::int64_t>(call.layout),
                      static_cast<std::int64_t>(call.output_type),
                      call.bias != nullptr,
                      call.addend != nullptr,
                      call.addend == call.c,
                      a_alignment,
                      b_alignment,
                      c_alignment,
                      addend_alignment,
                      call.bias ? alignment_of(call.bias) : 16};
    if (auto found = plans.find(key); found != plans.end()) return found->second;
    if (plans.size() >= kMaxCachedPlans) clear_plans();

    const bool a_transposed = call.layout == GemmLayout::kTN;  // a stored [K,M]
    const bool b_transposed = call.layout == GemmLayout::kNT;  // b stored [N,K]
    const cudaDataType_t output_type = call.output_type == OutputType::kBf16 ? CUDA_R_16BF : CUDA_R_32F;

    MatmulPlan plan;
    try {
      MOEBENCH_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.operation, CUBLAS_COMPUTE_32F, CUDA_R_32F));
      // Column-major view: our b (row-major [K,N] or [N,K]) is cuBLASLt's A.
      const cublasOperation_t first_op = b_transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
      const cublasOperation_t second_op = a_transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
      MOEBENCH_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.operation, CUBLASLT_MATMUL_DESC_TRANSA, &first_op,
                                                           sizeof first_op));
      MOEBENCH_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.operation, CUBLASLT_MATMUL_DESC_TRANSB, &second_op,
                                                           sizeof second_op));
      if (call.bias != nullptr) {
        const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
        MOEBENCH_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.operation, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                             &epilogue, sizeof epilogue));
        const cudaDataType_t bias_type = CUDA_R_16BF;
        MOEBENCH_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
            plan.operation, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type));
      }
      // Stored shapes (rows, columns, leading dimension) in column-major terms.
      const std::uint64_t m = call.m, n = call.n, k = call.k;
      if (b_transposed) {
        MOEBENCH_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.first, CUDA_R_16BF, k, n, k));
      } else {
        MOEBENCH_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.first, CUDA_R_16BF, n, k, n));
      }
      if (a_transposed) {
        MOEBENCH_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.second, CUDA_R_16BF, m, k, m));
      } else {
        MOEBENCH_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.second, CUDA_R_16BF, k, m, k));
      }
      MOEBENCH_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.output, output_type, n, m, n));

      cublasLtMatmulPreference_t preference = nullptr;
      MOEBENCH_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
      std::unique_ptr<std::remove_pointer_t<cublasLtMatmulPreference_t>, decltype(&cublasLtMatmulPreferenceDestroy)>
          preference_owner(preference, &cublasLtMatmulPreferenceDestroy);
      const std::uint64_t workspace_bytes = kWorkspaceBytes;
      MOEBENCH_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
          preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes, sizeof workspace_bytes));
      const std::array<std::pair<cublasLtMatmulPreferenceAttributes_t, std::uint32_t>, 4> alignments{{
          {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, static_cast<std::uint32_t>(b_alignment)},
          {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, static_cast<std::uint32_t>(a_alignment)},
          {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, static_cast<std::uint32_t>(addend_alignment)},
          {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, static_cast<std::uint32_t>(c_alignment)},
      }};
      for (const auto& [attribute, bytes] : alignments) {
        MOEBENCH_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, attribute, &bytes, sizeof bytes));
      }
      cublasLtMatmulHeuristicResult_t result{};
      int found = 0;
      MOEBENCH_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(handle, plan.operation, plan.first, plan.second,
                                                           plan.output, plan.output, preference, 1, &result, &found));
      if (found == 0) {
        throw Error("cuBLASLt has no algorithm for gemm m=" + std::to_string(call.m) + " n=" +
                    std::to_string(call.n) + " k=" + std::to_string(call.k) + " layout " +
                    layout_name(call.layout) + (call.output_type == OutputType::kBf16 ? " bf16" : " f32") +
                    " output" + (call.addend ? " with an addend" : ""));
      }
      plan.algorithm = result.algo;
    } catch (...) {
      plan.destroy();
      throw;
    }
    return plans.emplace(key, plan).first->second;
  }
};

GemmContext::GemmContext(int device) : state_(std::make_unique<State>()) {
  state_->device = device;
  int previous = 0;
  MOEBENCH_CUDA_CHECK(cudaGetDevice(&previous));
  MOEBENCH_CUDA_CHECK(cudaSetDevice(device));
  MOEBENCH_CUBLAS_CHECK(cublasLtCreate(&state_->handle));
  MOEBENCH_CUDA_CHECK(cudaMalloc(&state_->workspace, kWorkspaceBytes));
  MOEBENCH_CUDA_CHECK(cudaSetDevice(previous));
}

GemmContext::~GemmContext() {
  state_->clear_plans();
  cudaFree(state_->workspace);
  cublasLtDestroy(state_->handle);
}

int GemmContext::device() const { return state_->device; }

GemmContext& GemmContext::for_current_device() {
  static std::mutex mutex;
  static std::vector<std::unique_ptr<GemmContext>> contexts;
  int device = 0;
  MOEBENCH_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(mutex);
  if (contexts.size() <= static_cast<size_t>(device)) contexts.resize(device + 1);
  if (!contexts[device]) contexts[device] = std::make_unique<GemmContext>(device);
  return *contexts[device];
}

namespace {

void check_gemm_arguments(const MatmulCall& call) {
  if (call.m < 0 || call.n < 0 || call.k < 0) {
    throw Error("gemm: negative size m=" + std::to_string(call.m) + " n=" + std::to_string(call.n) +
                " k=" + std::to_string(call.k));
  }
  if (call.m > 0 && call.n > 0 && call.k == 0) {
    throw Error("gemm: k=0 with a non-empty output (m=" + std::to_string(call.m) + ", n=" +
                std::to_string(call.n) + "); an empty reduction is the caller's zero fill");
  }
  if (call.c == nullptr || call.a == nullptr || call.b == nullptr) {
    throw Error("gemm: null pointer among c, a, b");
  }
}

void run_matmul(GemmContext::State& state, const MatmulCall& call, cudaStream_t stream) {
  check_gemm_arguments(call);
  if (call.m == 0 || call.n == 0) return;
  std::lock_guard<std::mutex> lock(state.mutex);
  MatmulPlan& plan = state.plan_for(call);
  if (call.bias != nullptr) {
    const void* bias = call.bias;
    MOEBENCH_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.operation, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                         sizeof bias));
  }
  const float alpha = 1.0f;
  const float beta = call.addend ? 1.0f : 0.0f;
  MOEBENCH_CUBLAS_CHECK(cublasLtMatmul(state.handle, plan.operation, &alpha, call.b, plan.first, call.a, plan.second,
                                       &beta, call.addend ? call.addend : call.c, plan.output, call.c, plan.output,
                                       &plan.algorithm, state.workspace, kWorkspaceBytes, stream));
}

}  // namespace

void gemm(GemmContext& context, __nv_bfloat16* c, const __nv_bfloat16* a, const __nv_bfloat16* b,
          const __nv_bfloat16* bias, std::int64_t m, std::int64_t n, std::int64_t k, GemmLayout layout,
          cudaStream_t stream) {
  gemm(context, c, a, b, bias, nullptr, m, n, k, layout, stream);
}

void gemm(GemmContext& context, __nv_bfloat16* c, const __nv_bfloat16* a, const __nv_bfloat16* b,
          const __nv_bfloat16* bias, const __nv_bfloat16* addend, std::int64_t m, std::int64_t n, std::int64_t k,
          GemmLayout layout, cudaStream_t stream) {
  run_matmul(context.state(), MatmulCall{c, addend, a, b, bias, m, n, k, layout, OutputType::kBf16}, stream);
}

void gemm(GemmContext& context, float* c, const __nv_bfloat16* a, const __nv_bfloat16* b, std::int64_t m,
          std::int64_t n, std::int64_t k, GemmLayout layout, GemmOutput output, cudaStream_t stream) {
  run_matmul(context.state(),
             MatmulCall{c, output == GemmOutput::kAccumulate ? c : nullptr, a, b, nullptr, m, n, k, layout,
                        OutputType::kF32},
             stream);
}

}  // namespace moebench::ops::cuda
