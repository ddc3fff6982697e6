// CUDA flash attention (ops/cuda/flash_attention_{forward,backward}.cu, and the
// Hopper versions flash_attention_{forward,backward}_sm90.cu) against the CPU twin
// run on the same bf16-rounded inputs, plus timing at the proxies' shapes. The
// sm90 forward and backward run every case whose head dims they support
// (128/128, 192/128) and skip the others by name; on a GPU other than Hopper
// they are skipped. Bounds: relative L2 error of out, dq, dk, dv below 1e-2 (bf16 P and
// dS in the tensor-core products), lse within 1e-3 absolute (fp32 throughout).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "gpu_test_support.h"
#include "kernel_timer.h"
#include "moebench/core/error.h"
#include "moebench/ops/attention.h"

namespace moebench::gpu_testing {
namespace {

using ops::AttentionShape;
using bf16 = __nv_bfloat16;

constexpr double kMaxRelativeL2 = 1e-2;
constexpr double kLseAbsTolerance = 1e-3;

size_t q_count(const AttentionShape& s) { return size_t(s.batch * s.seq * s.q_heads * s.qk_head_dim); }
size_t k_count(const AttentionShape& s) { return size_t(s.batch * s.seq * s.kv_heads * s.qk_head_dim); }
size_t v_count(const AttentionShape& s) { return size_t(s.batch * s.seq * s.kv_heads * s.v_head_dim); }
size_t out_count(const AttentionShape& s) { return size_t(s.batch * s.seq * s.q_heads * s.v_head_dim); }
size_t lse_count(const AttentionShape& s) { return size_t(s.batch * s.q_heads * s.seq); }

std::string describe(const AttentionShape& s) {
  return "B" + std::to_string(s.batch) + " S" + std::to_string(s.seq) + " Hq" + std::to_string(s.q_heads) + " Hkv" +
         std::to_string(s.kv_heads) + " d" + std::to_string(s.qk_head_dim) + "/" + std::to_string(s.v_head_dim);
}

// Relative L2 error with the worst element printed (all_close at a loose
// bound only reports; the L2 bound decides). A reference that is zero up to
// rounding (dq and dk at S = 1, where the softmax has one key) has no relative
// error to speak of: there every element must be within 1e-4 of it.
::testing::AssertionResult l2_close(const std::vector<float>& actual, const std::vector<float>& expected,
                                    const char* what) {
  const bool reference_is_zero =
      std::all_of(expected.begin(), expected.end(), [](float x) { return std::abs(x) < 1e-6f; });
  const ::testing::AssertionResult elementwise =
      all_close(actual, expected, 0.05, reference_is_zero ? 1e-4 : 0.05, what);
  if (reference_is_zero) return elementwise;
  const double error = relative_l2_error(actual, expected);
  std::printf("  %-28s relative L2 error %.3e\n", what, error);
  if (!(error < kMaxRelativeL2))
    return ::testing::AssertionFailure() << what << ": relative L2 error " << error << " >= " << kMaxRelativeL2;
  return ::testing::AssertionSuccess();
}

struct AttentionInputs {
  std::vector<float> q, k, v, dout;  // bf16-rounded
};

AttentionInputs random_inputs(const AttentionShape& s, uint64_t seed) {
  // q and k in [-2, 2] give scores spread enough for a peaked softmax at d 128.
  return {round_to_bf16(random_floats(q_count(s), seed, -2, 2)),
          round_to_bf16(random_floats(k_count(s), seed + 1, -2, 2)),
          round_to_bf16(random_floats(v_count(s), seed + 2)), round_to_bf16(random_floats(out_count(s), seed + 3))};
}

struct AttentionCase {
  AttentionShape shape;
  std::optional<double> softmax_scale;
};

void PrintTo(const AttentionCase& c, std::ostream* os) { *os << describe(c.shape); }

class AttentionTest : public ::testing::TestWithParam<AttentionCase> {};

// The two forward versions, same contract (ops/attention.h).
enum class ForwardVersion { kV1, kSm90 };

// Head dims the Hopper forward and backward implement; the others stay on v1.
bool sm90_forward_supports(const AttentionShape& s) {
  return (s.qk_head_dim == 128 && s.v_head_dim == 128) || (s.qk_head_dim == 192 && s.v_head_dim == 128);
}

bool device_is_hopper() {
  int device = 0, major = 0;
  MOEBENCH_CUDA_CHECK(cudaGetDevice(&device));
  MOEBENCH_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  return major == 9;
}

void run_forward(ForwardVersion version, bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                 const AttentionShape& s, std::optional<double> scale) {
  if (version == ForwardVersion::kV1) {
    ops::cuda::causal_attention_forward(out, lse, q, k, v, s, scale, nullptr);
  } else {
    ops::cuda::causal_attention_forward_sm90(out, lse, q, k, v, s, scale, nullptr);
  }
}

void check_forward(ForwardVersion version, const AttentionShape& s, std::optional<double> scale) {
  std::printf("forward%s %s\n", version == ForwardVersion::kSm90 ? " (sm90)" : "", describe(s).c_str());
  const AttentionInputs in = random_inputs(s, 1000 + s.seq);

  std::vector<float> out_ref(out_count(s)), lse_ref(lse_count(s));
  ops::cpu::causal_attention_forward(out_ref.data(), lse_ref.data(), in.q.data(), in.k.data(), in.v.data(), s, scale);

  DeviceBuffer<bf16> q(to_bf16(in.q)), k(to_bf16(in.k)), v(to_bf16(in.v)), out(out_count(s));
  DeviceBuffer<float> lse(lse_count(s));
  run_forward(version, out.get(), lse.get(), q.get(), k.get(), v.get(), s, scale);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());

  EXPECT_TRUE(l2_close(from_bf16(out.download()), out_ref, "out"));
  EXPECT_TRUE(all_close(lse.download(), lse_ref, 0, kLseAbsTolerance, "lse"));
}

TEST_P(AttentionTest, ForwardMatchesCpu) { check_forward(ForwardVersion::kV1, GetParam().shape, GetParam().softmax_scale); }

TEST_P(AttentionTest, ForwardSm90MatchesCpu) {
  const AttentionShape& s = GetParam().shape;
  if (!sm90_forward_supports(s))
    GTEST_SKIP() << "causal_attention_forward_sm90 does not implement head dims " << s.qk_head_dim << "/"
                 << s.v_head_dim << " (v1 only)";
  if (!device_is_hopper()) GTEST_SKIP() << "causal_attention_forward_sm90 needs a Hopper GPU";
  check_forward(ForwardVersion::kSm90, s, GetParam().softmax_scale);
}

// The two backward versions, same contract and workspace (ops/attention.h).
enum class BackwardVersion { kV1, kSm90 };

void run_backward(BackwardVersion version, bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q,
                  const bf16* k, const bf16* v, const bf16* out, const float* lse, void* workspace,
                  const AttentionShape& s, std::optional<double> scale) {
  if (version == BackwardVersion::kV1) {
    ops::cuda::causal_attention_backward(dq, dk, dv, dout, q, k, v, out, lse, workspace, s, scale, nullptr);
  } else {
    ops::cuda::causal_attention_backward_sm90(dq, dk, dv, dout, q, k, v, out, lse, workspace, s, scale, nullptr);
  }
}

void check_backward(BackwardVersion version, const AttentionShape& s, std::optional<double> scale) {
  std::printf("backward%s %s\n", version == BackwardVersion::kSm90 ? " (sm90)" : "", describe(s).c_str());
  const AttentionInputs in = random_inputs(s, 2000 + s.seq);

  // Both sides start from the same forward results: out rounded to bf16 as the
  // GPU stores it, lse in fp32.
  std::vector<float> out_ref(out_count(s)), lse_ref(lse_count(s));
  ops::cpu::causal_attention_forward(out_ref.data(), lse_ref.data(), in.q.data(), in.k.data(), in.v.data(), s, scale);
  const std::vector<float> out_bf16 = round_to_bf16(out_ref);
  std::vector<float> dq_ref(q_count(s)), dk_ref(k_count(s)), dv_ref(v_count(s));
  ops::cpu::causal_attention_backward(dq_ref.data(), dk_ref.data(), dv_ref.data(), in.dout.data(), in.q.data(),
                                      in.k.data(), in.v.data(), out_bf16.data(), lse_ref.data(), s, scale);

  DeviceBuffer<bf16> q(to_bf16(in.q)), k(to_bf16(in.k)), v(to_bf16(in.v)), dout(to_bf16(in.dout)),
      out(to_bf16(out_bf16));
  DeviceBuffer<float> lse(lse_ref);
  DeviceBuffer<bf16> dq(q_count(s)), dk(k_count(s)), dv(v_count(s));
  DeviceBuffer<unsigned char> workspace(ops::cuda::causal_attention_backward_workspace_bytes(s));
  run_backward(version, dq.get(), dk.get(), dv.get(), dout.get(), q.get(), k.get(), v.get(), out.get(), lse.get(),
               workspace.get(), s, scale);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());

  EXPECT_TRUE(l2_close(from_bf16(dq.download()), dq_ref, "dq"));
  EXPECT_TRUE(l2_close(from_bf16(dk.download()), dk_ref, "dk"));
  EXPECT_TRUE(l2_close(from_bf16(dv.download()), dv_ref, "dv"));
}

TEST_P(AttentionTest, BackwardMatchesCpu) {
  check_backward(BackwardVersion::kV1, GetParam().shape, GetParam().softmax_scale);
}

TEST_P(AttentionTest, BackwardSm90MatchesCpu) {
  const AttentionShape& s = GetParam().shape;
  if (!sm90_forward_supports(s))
    GTEST_SKIP() << "causal_attention_backward_sm90 does not implement head dims " << s.qk_head_dim << "/"
                 << s.v_head_dim << " (v1 only)";
  if (!device_is_hopper()) GTEST_SKIP() << "causal_attention_backward_sm90 needs a Hopper GPU";
  check_backward(BackwardVersion::kSm90, s, GetParam().softmax_scale);
}

std::vector<AttentionCase> correctness_cases() {
  std::vector<AttentionCase> cases;
  for (std::int64_t seq : {1, 7, 100, 129, 300}) {
    cases.push_back({{2, seq, 4, 2, 128, 128}, std::nullopt});  // GQA
    cases.push_back({{2, seq, 2, 2, 128, 128}, std::nullopt});  // MHA
    cases.push_back({{2, seq, 2, 2, 192, 128}, std::nullopt});  // MLA
    cases.push_back({{1, seq, 4, 1, 24, 16}, std::nullopt});    // tiny-deepseek's MLA
    cases.push_back({{1, seq, 4, 2, 16, 16}, std::nullopt});    // tiny-mixtral
  }
  cases.push_back({{1, 300, 4, 2, 192, 128}, std::nullopt});  // MLA with GQA sharing
  cases.push_back({{1, 257, 2, 1, 128, 128}, 0.3});           // a caller's own scale
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionTest, ::testing::ValuesIn(correctness_cases()),
                         [](const ::testing::TestParamInfo<AttentionCase>& info) {
                           const AttentionShape& s = info.param.shape;
                           return "S" + std::to_string(s.seq) + "_Hq" + std::to_string(s.q_heads) + "_Hkv" +
                                  std::to_string(s.kv_heads) + "_d" + std::to_string(s.qk_head_dim) + "_" +
                                  std::to_string(s.v_head_dim) + (info.param.softmax_scale ? "_scaled" : "");
                         });

TEST(AttentionShapeCheck, UnsupportedHeadDimsThrowNamingTheSupportedOnes) {
  const AttentionShape s{1, 16, 2, 2, 64, 64};
  try {
    ops::cuda::causal_attention_forward(nullptr, nullptr, nullptr, nullptr, nullptr, s, std::nullopt, nullptr);
    FAIL() << "expected moebench::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("192/128"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ops::cuda::causal_attention_backward_workspace_bytes({1, 16, 3, 2, 128, 128}), Error);
}

TEST(AttentionShapeCheck, Sm90ForwardRejectsHeadDimsItDoesNotImplement) {
  // Supported by v1, not by the Hopper kernel: the message names what it does support.
  const AttentionShape s{1, 16, 4, 1, 24, 16};
  try {
    ops::cuda::causal_attention_forward_sm90(nullptr, nullptr, nullptr, nullptr, nullptr, s, std::nullopt, nullptr);
    FAIL() << "expected moebench::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("192/128"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ops::cuda::causal_attention_forward_sm90(nullptr, nullptr, nullptr, nullptr, nullptr,
                                                        {1, 16, 2, 2, 64, 64}, std::nullopt, nullptr),
               Error);
}

TEST(AttentionShapeCheck, Sm90BackwardRejectsHeadDimsItDoesNotImplement) {
  const AttentionShape s{1, 16, 4, 2, 16, 16};
  try {
    ops::cuda::causal_attention_backward_sm90(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                              nullptr, nullptr, s, std::nullopt, nullptr);
    FAIL() << "expected moebench::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("192/128"), std::string::npos) << e.what();
  }
}

// ---- timing ---------------------------------------------------------------

// Causal FLOPs: forward 2 * B * Hq * S^2 * (Dqk + Dv) / 2 (two matrix products
// over the lower triangle), backward 2.5 times that (five products).
double forward_flops(const AttentionShape& s) {
  return 2.0 * s.batch * s.q_heads * double(s.seq) * s.seq * (s.qk_head_dim + s.v_head_dim) / 2;
}

// Output row (b, s, h) and its lse in double, for spot checks at sizes the
// CPU twin would take minutes on.
void reference_row(const AttentionInputs& in, const AttentionShape& sh, std::int64_t b, std::int64_t s,
                   std::int64_t h, std::vector<double>& out_row, double& lse) {
  const double scale = 1.0 / std::sqrt(double(sh.qk_head_dim));
  const std::int64_t kv = h / (sh.q_heads / sh.kv_heads);
  std::vector<double> scores(size_t(s + 1));
  double max_score = -INFINITY;
  for (std::int64_t j = 0; j <= s; ++j) {
    double dot = 0;
    for (std::int64_t d = 0; d < sh.qk_head_dim; ++d)
      dot += double(in.q[size_t(((b * sh.seq + s) * sh.q_heads + h) * sh.qk_head_dim + d)]) *
             in.k[size_t(((b * sh.seq + j) * sh.kv_heads + kv) * sh.qk_head_dim + d)];
    scores[size_t(j)] = scale * dot;
    max_score = std::max(max_score, scores[size_t(j)]);
  }
  out_row.assign(size_t(sh.v_head_dim), 0.0);
  double sum = 0;
  for (std::int64_t j = 0; j <= s; ++j) {
    const double w = std::exp(scores[size_t(j)] - max_score);
    sum += w;
    for (std::int64_t d = 0; d < sh.v_head_dim; ++d)
      out_row[size_t(d)] += w * in.v[size_t(((b * sh.seq + j) * sh.kv_heads + kv) * sh.v_head_dim + d)];
  }
  for (double& x : out_row) x /= sum;
  lse = max_score + std::log(sum);
}

::testing::AssertionResult all_finite(const std::vector<float>& values, const char* what) {
  for (size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i])) return ::testing::AssertionFailure() << what << ": " << values[i] << " at " << i;
  return ::testing::AssertionSuccess();
}

void time_attention(const char* model, const AttentionShape& s) {
  const AttentionInputs in = random_inputs(s, 7);
  DeviceBuffer<bf16> q(to_bf16(in.q)), k(to_bf16(in.k)), v(to_bf16(in.v)), dout(to_bf16(in.dout)), out(out_count(s));
  DeviceBuffer<float> lse(lse_count(s));
  DeviceBuffer<bf16> dq(q_count(s)), dk(k_count(s)), dv(v_count(s));
  DeviceBuffer<unsigned char> workspace(ops::cuda::causal_attention_backward_workspace_bytes(s));

  auto forward = [&] {
    ops::cuda::causal_attention_forward(out.get(), lse.get(), q.get(), k.get(), v.get(), s, std::nullopt, nullptr);
  };
  auto backward = [&] {
    ops::cuda::causal_attention_backward(dq.get(), dk.get(), dv.get(), dout.get(), q.get(), k.get(), v.get(),
                                         out.get(), lse.get(), workspace.get(), s, std::nullopt, nullptr);
  };
  const double forward_ms = mean_microseconds(forward) / 1000;
  const double backward_ms = mean_microseconds(backward) / 1000;
  const double flops = forward_flops(s);
  std::printf("%-18s %-28s forward %7.3f ms %6.1f TFLOP/s | backward %7.3f ms %6.1f TFLOP/s | total %7.3f ms\n",
              model, describe(s).c_str(), forward_ms, flops / forward_ms * 1e-9, backward_ms,
              2.5 * flops / backward_ms * 1e-9, forward_ms + backward_ms);

  // Correctness at this size: sampled rows against double precision, and
  // every gradient finite.
  auto check_sampled_rows = [&](const char* what) {
    const std::vector<float> out_gpu = from_bf16(out.download()), lse_gpu = lse.download();
    std::vector<float> sampled_gpu, sampled_ref, sampled_lse_gpu, sampled_lse_ref;
    for (std::int64_t h : {std::int64_t(0), s.q_heads - 1})
      for (std::int64_t row : {std::int64_t(0), std::int64_t(1), s.seq / 3, s.seq - 129, s.seq - 1}) {
        std::vector<double> ref;
        double ref_lse;
        reference_row(in, s, 0, row, h, ref, ref_lse);
        for (std::int64_t d = 0; d < s.v_head_dim; ++d) {
          sampled_gpu.push_back(out_gpu[size_t((row * s.q_heads + h) * s.v_head_dim + d)]);
          sampled_ref.push_back(float(ref[size_t(d)]));
        }
        sampled_lse_gpu.push_back(lse_gpu[size_t(h * s.seq + row)]);
        sampled_lse_ref.push_back(float(ref_lse));
      }
    const std::string out_what = std::string("out (sampled rows") + what + ")";
    const std::string lse_what = std::string("lse (sampled rows") + what + ")";
    EXPECT_TRUE(l2_close(sampled_gpu, sampled_ref, out_what.c_str()));
    EXPECT_TRUE(all_close(sampled_lse_gpu, sampled_lse_ref, 0, kLseAbsTolerance, lse_what.c_str()));
  };
  check_sampled_rows("");

  // The Hopper forward and backward (version 2) on the same inputs, timed and
  // checked the same way (the sm90 backward's gradients also against v1's).
  if (!sm90_forward_supports(s)) {
    std::printf("%-18s %-28s forward sm90: skipped, head dims %lld/%lld are v1 only\n", model, describe(s).c_str(),
                static_cast<long long>(s.qk_head_dim), static_cast<long long>(s.v_head_dim));
  } else if (!device_is_hopper()) {
    std::printf("%-18s %-28s forward sm90: skipped, not a Hopper GPU\n", model, describe(s).c_str());
  } else {
    out.poison();
    lse.poison();
    auto forward_sm90 = [&] {
      ops::cuda::causal_attention_forward_sm90(out.get(), lse.get(), q.get(), k.get(), v.get(), s, std::nullopt,
                                               nullptr);
    };
    const double sm90_ms = mean_microseconds(forward_sm90) / 1000;
    std::printf("%-18s %-28s forward sm90 %7.3f ms %6.1f TFLOP/s (%.2fx v1) | sm90 forward + v1 backward %7.3f ms\n",
                model, describe(s).c_str(), sm90_ms, flops / sm90_ms * 1e-9, forward_ms / sm90_ms,
                sm90_ms + backward_ms);
    check_sampled_rows(", sm90");

    // v1's gradients from the sm90 forward's out and lse, then the sm90
    // backward's on the same inputs: they must agree (relative L2).
    backward();
    const std::vector<float> dq_v1 = from_bf16(dq.download()), dk_v1 = from_bf16(dk.download()),
                             dv_v1 = from_bf16(dv.download());
    dq.poison();
    dk.poison();
    dv.poison();
    auto backward_sm90 = [&] {
      ops::cuda::causal_attention_backward_sm90(dq.get(), dk.get(), dv.get(), dout.get(), q.get(), k.get(), v.get(),
                                                out.get(), lse.get(), workspace.get(), s, std::nullopt, nullptr);
    };
    const double backward_sm90_ms = mean_microseconds(backward_sm90) / 1000;
    std::printf(
        "%-18s %-28s backward sm90 %7.3f ms %6.1f TFLOP/s (%.2fx v1) | sm90 forward + sm90 backward %7.3f ms\n",
        model, describe(s).c_str(), backward_sm90_ms, 2.5 * flops / backward_sm90_ms * 1e-9,
        backward_ms / backward_sm90_ms, sm90_ms + backward_sm90_ms);
    EXPECT_TRUE(l2_close(from_bf16(dq.download()), dq_v1, "dq (sm90 vs v1)"));
    EXPECT_TRUE(l2_close(from_bf16(dk.download()), dk_v1, "dk (sm90 vs v1)"));
    EXPECT_TRUE(l2_close(from_bf16(dv.download()), dv_v1, "dv (sm90 vs v1)"));
  }
  EXPECT_TRUE(all_finite(from_bf16(dq.download()), "dq"));
  EXPECT_TRUE(all_finite(from_bf16(dk.download()), "dk"));
  EXPECT_TRUE(all_finite(from_bf16(dv.download()), "dv"));
}

TEST(AttentionTiming, Mixtral) { time_attention("Mixtral-8x7B", {1, 4096, 32, 8, 128, 128}); }
TEST(AttentionTiming, Qwen2) { time_attention("Qwen2-57B-A14B", {1, 4096, 28, 4, 128, 128}); }
TEST(AttentionTiming, DeepSeekV2LiteMla) { time_attention("DeepSeek-V2-Lite", {1, 4096, 16, 16, 192, 128}); }

}  // namespace
}  // namespace moebench::gpu_testing
