// Embedding CUDA kernels against the CPU reference (float64 on the same bf16
// values): the forward gather is exact, the fp32 table gradient agrees to fp32
// summation error and is bitwise the same from run to run, with repeated ids,
// one id filling the whole batch, odd widths and invalid ids.
#include "moebench/ops/embedding.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "gpu_test_support.h"
#include "kernel_timer.h"

namespace moebench {
namespace {

using namespace gpu_testing;
namespace gpu = ops::cuda;

std::vector<int64_t> random_ids(int64_t n, int64_t vocab, int64_t distinct, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> pick(0, std::min(distinct, vocab) - 1);
  std::vector<int64_t> ids(n);
  for (auto& id : ids) id = (pick(rng) * 7919) % vocab;  // a few ids spread over the table
  return ids;
}

void check_embedding(int64_t n, int64_t vocab, int64_t c, const std::vector<int64_t>& ids, uint64_t seed) {
  SCOPED_TRACE("n=" + std::to_string(n) + " V=" + std::to_string(vocab) + " C=" + std::to_string(c));
  const auto table = round_to_bf16(random_floats(vocab * c, seed, -1, 1));
  const auto dout = round_to_bf16(random_floats(n * c, seed + 1, -1, 1));
  const auto dtable_init = random_floats(vocab * c, seed + 2, -1, 1);
  const std::vector<double> table_d(table.begin(), table.end()), dout_d(dout.begin(), dout.end());
  std::vector<double> out_ref(n * c), dtable_ref(dtable_init.begin(), dtable_init.end());
  ops::cpu::embedding_forward(out_ref.data(), ids.data(), table_d.data(), n, vocab, c);
  ops::cpu::embedding_backward(dtable_ref.data(), dout_d.data(), ids.data(), n, vocab, c);

  DeviceBuffer<__nv_bfloat16> d_table(to_bf16(table)), d_dout(to_bf16(dout)), d_out(n * c);
  DeviceBuffer<int64_t> d_ids(ids);
  DeviceBuffer<float> d_dtable(dtable_init);
  DeviceBuffer<char> scratch(gpu::embedding_backward_scratch_bytes(n, vocab));
  gpu::embedding_forward(d_out.get(), d_ids.get(), d_table.get(), n, vocab, c, nullptr);
  gpu::embedding_backward(d_dtable.get(), d_dout.get(), d_ids.get(), n, vocab, c, scratch.get(), nullptr);
  EXPECT_TRUE(all_close(from_bf16(d_out.download()), std::vector<float>(out_ref.begin(), out_ref.end()), 0, 0,
                        "embedding out (bf16, exact)"));
  EXPECT_TRUE(all_close(d_dtable.download(), std::vector<float>(dtable_ref.begin(), dtable_ref.end()), 1e-5,
                        1e-6 * double(n), "embedding dtable (fp32, +=)"));
}

TEST(EmbeddingCuda, MatchesCpuReference) {
  check_embedding(1, 1, 1, {0}, 1);
  check_embedding(7, 13, 5, random_ids(7, 13, 13, 2), 2);           // element-wise path
  check_embedding(64, 50, 256, random_ids(64, 50, 5, 3), 3);         // many repeats
  check_embedding(300, 1000, 4096, random_ids(300, 1000, 1000, 4), 4);
  check_embedding(33, 100, 12, random_ids(33, 100, 100, 5), 5);      // width not a multiple of 8
  check_embedding(2048, 10, 64, std::vector<int64_t>(2048, 9), 6);  // one id for the whole batch
}

TEST(EmbeddingCuda, InvalidIdsGiveNaNRowsAndNoGradient) {
  const int64_t n = 3, vocab = 4, c = 8;
  const std::vector<int64_t> ids = {1, 4, -1};
  DeviceBuffer<__nv_bfloat16> table(to_bf16(random_floats(vocab * c, 1))), out(n * c),
      dout(to_bf16(std::vector<float>(n * c, 1.0f)));
  DeviceBuffer<int64_t> d_ids(ids);
  DeviceBuffer<float> dtable(std::vector<float>(vocab * c, 0.0f));
  DeviceBuffer<char> scratch(gpu::embedding_backward_scratch_bytes(n, vocab));
  gpu::embedding_forward(out.get(), d_ids.get(), table.get(), n, vocab, c, nullptr);
  gpu::embedding_backward(dtable.get(), dout.get(), d_ids.get(), n, vocab, c, scratch.get(), nullptr);
  const auto out_host = from_bf16(out.download());
  for (int64_t j = 0; j < c; ++j) {
    EXPECT_FALSE(std::isnan(out_host[j]));
    EXPECT_TRUE(std::isnan(out_host[c + j]));
    EXPECT_TRUE(std::isnan(out_host[2 * c + j]));
  }
  const auto dtable_host = dtable.download();
  for (int64_t v = 0; v < vocab; ++v)
    for (int64_t j = 0; j < c; ++j) EXPECT_EQ(dtable_host[v * c + j], v == 1 ? 1.0f : 0.0f);
}

TEST(EmbeddingCuda, BackwardIsBitwiseDeterministic) {
  const int64_t n = 4096, vocab = 300, c = 512;
  const auto ids = random_ids(n, vocab, 40, 9);
  DeviceBuffer<__nv_bfloat16> dout(to_bf16(random_floats(n * c, 10)));
  DeviceBuffer<int64_t> d_ids(ids);
  DeviceBuffer<char> scratch(gpu::embedding_backward_scratch_bytes(n, vocab));
  std::vector<std::vector<float>> results;
  for (int run = 0; run < 2; ++run) {
    DeviceBuffer<float> dtable(std::vector<float>(vocab * c, 0.0f));
    gpu::embedding_backward(dtable.get(), dout.get(), d_ids.get(), n, vocab, c, scratch.get(), nullptr);
    results.push_back(dtable.download());
  }
  EXPECT_EQ(0, std::memcmp(results[0].data(), results[1].data(), results[0].size() * sizeof(float)));
}

TEST(EmbeddingTiming, ProxyTables) {
  const int64_t n = 4096;
  struct Shape {
    const char* name;
    int64_t vocab, c;
  };
  for (const Shape& s : {Shape{"mixtral 32000x4096", 32000, 4096}, Shape{"deepseek 102400x2048", 102400, 2048},
                         Shape{"qwen2 151936x3584", 151936, 3584}}) {
    DeviceBuffer<__nv_bfloat16> table(s.vocab * s.c), out(n * s.c), dout(n * s.c);
    DeviceBuffer<float> dtable(s.vocab * s.c);
    MOEBENCH_CUDA_CHECK(cudaMemset(table.get(), 0x3F, s.vocab * s.c * 2));  // bf16 0x3F3F = 0.746
    MOEBENCH_CUDA_CHECK(cudaMemset(dout.get(), 0x3F, n * s.c * 2));
    MOEBENCH_CUDA_CHECK(cudaMemset(dtable.get(), 0, s.vocab * s.c * 4));
    DeviceBuffer<int64_t> ids(random_ids(n, s.vocab, s.vocab, 11));
    DeviceBuffer<char> scratch(gpu::embedding_backward_scratch_bytes(n, s.vocab));
    const double forward_us =
        mean_microseconds([&] { gpu::embedding_forward(out.get(), ids.get(), table.get(), n, s.vocab, s.c, nullptr); });
    const double backward_us = mean_microseconds([&] {
      gpu::embedding_backward(dtable.get(), dout.get(), ids.get(), n, s.vocab, s.c, scratch.get(), nullptr);
    });
    print_bandwidth((std::string("embedding_forward ") + s.name).c_str(), forward_us, 4.0 * n * s.c);
    print_bandwidth((std::string("embedding_backward ") + s.name).c_str(), backward_us, 10.0 * n * s.c);
    const auto out_host = from_bf16(out.download());
    EXPECT_EQ(out_host[0], 0.74609375f);
    EXPECT_EQ(out_host.back(), 0.74609375f);
  }
}

}  // namespace
}  // namespace moebench
