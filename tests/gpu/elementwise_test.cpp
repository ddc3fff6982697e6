// Column copies on CUDA against the host: every unit width of the copy
// kernel (16, 8, 4, 2 and 1 bytes, chosen from the addresses, pitches and row
// length), bf16, f32 and i64 rows, the destination poisoned around the
// copied block; and the time of MLA's narrow rope columns.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "gpu_test_support.h"
#include "kernel_timer.h"
#include "moebench/core/cuda_allocator.h"
#include "moebench/core/device_transfer.h"
#include "moebench/ops/elementwise.h"

namespace moebench {
namespace {

using namespace gpu_testing;

struct ColumnCase {
  DType dtype;
  int64_t rows, dst_width, dst_col, src_width, src_col, count;
};

// Bytes 0..n-1 of a counter, as the tensor's storage: every element distinct.
Tensor counting_tensor(DType dtype, int64_t rows, int64_t width) {
  Tensor t = Tensor::empty({rows, width}, dtype);
  auto* bytes = static_cast<unsigned char*>(t.data_ptr());
  for (size_t i = 0; i < t.nbytes(); ++i) bytes[i] = static_cast<unsigned char>(i * 7 + 3);
  return t;
}

TEST(CopyColumnsCuda, EveryUnitWidthCopiesTheBlockAndNothingElse) {
  enable_cuda_tensors();
  for (const ColumnCase& c : {ColumnCase{DType::BF16, 37, 192, 128, 64, 0, 64},    // 16-byte units (MLA's q_pe)
                              ColumnCase{DType::BF16, 33, 20, 4, 12, 8, 4},       // 8
                              ColumnCase{DType::F32, 29, 7, 1, 5, 2, 3},          // 4
                              ColumnCase{DType::BF16, 31, 9, 3, 7, 1, 5},         // 2
                              ColumnCase{DType::I64, 17, 6, 2, 4, 0, 3},          // 8 (i64 rows of 48 and 32 bytes)
                              ColumnCase{DType::FP8E4M3, 23, 7, 1, 5, 2, 3},      // 1
                              ColumnCase{DType::BF16, 4096, 576, 0, 576, 512, 64}}) {
    SCOPED_TRACE(std::string(name(c.dtype)) + " rows " + std::to_string(c.rows) + " count " +
                 std::to_string(c.count));
    const size_t element = size_in_bytes(c.dtype);
    const Tensor src = counting_tensor(c.dtype, c.rows, c.src_width);
    Tensor expected = Tensor::empty({c.rows, c.dst_width}, c.dtype);
    std::memset(expected.data_ptr(), 0xFF, expected.nbytes());
    for (int64_t r = 0; r < c.rows; ++r)
      std::memcpy(static_cast<char*>(expected.data_ptr()) + (r * c.dst_width + c.dst_col) * element,
                  static_cast<const char*>(src.data_ptr()) + (r * c.src_width + c.src_col) * element,
                  size_t(c.count) * element);
    Tensor dst = Tensor::empty({c.rows, c.dst_width}, c.dtype, Device::cuda(0));
    MOEBENCH_CUDA_CHECK(cudaMemset(dst.data_ptr(), 0xFF, dst.nbytes()));
    ops::copy_columns(dst, c.dst_width, c.dst_col, to_device(src, Device::cuda(0)), c.src_width, c.src_col, c.rows,
                      c.count);
    const Tensor got = to_host(dst);
    EXPECT_EQ(std::memcmp(got.data_ptr(), expected.data_ptr(), got.nbytes()), 0);
  }
}

TEST(CopyColumnsTiming, MlaRopeColumns) {
  enable_cuda_tensors();
  // DeepSeek-V2-Lite: q [4096 tokens x 16 heads, 192], its last 64 columns out and back.
  const int64_t rows = 4096 * 16;
  Tensor q = Tensor::empty({rows, 192}, DType::BF16, Device::cuda(0));
  Tensor q_pe = Tensor::empty({rows, 64}, DType::BF16, Device::cuda(0));
  ops::zero_(q);
  const double us = mean_microseconds([&] { ops::copy_columns(q_pe, 64, 0, q, 192, 128, rows, 64); });
  print_bandwidth("copy_columns MLA q_pe [65536 x 64 of 192] bf16", us, 2.0 * double(q_pe.nbytes()));
}

}  // namespace
}  // namespace moebench
