// Tensor: allocation, views sharing storage, copies between layouts and
// dtypes, the CPU-only guard, and the storage allocator hook.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "moebench/core/device_transfer.h"
#include "moebench/core/error.h"
#include "moebench/core/tensor.h"

namespace moebench {
namespace {

std::vector<float> values_of(const Tensor& tensor) {
  const Tensor dense = tensor.to(DType::F32).contiguous();
  const float* data = dense.data<float>();
  return std::vector<float>(data, data + dense.numel());
}

std::vector<float> iota(int n) {
  std::vector<float> values(n);
  for (int i = 0; i < n; ++i) values[i] = float(i);
  return values;
}

// The message of the Error thrown by `action`, or a failure if none is.
template <typename Action>
std::string error_message(Action&& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected moebench::Error";
  return "";
}

TEST(Tensor, EmptyHasContiguousLayout) {
  const Tensor t = Tensor::empty({2, 3, 4}, DType::BF16);
  EXPECT_EQ(t.shape(), (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(t.strides(), (std::vector<int64_t>{12, 4, 1}));
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.dim(), 3);
  EXPECT_EQ(t.size(-1), 4);
  EXPECT_EQ(t.stride(0), 12);
  EXPECT_EQ(t.nbytes(), 48u);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.device(), Device::cpu());
  EXPECT_EQ(t.describe(), "bf16[2, 3, 4] on cpu");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data_ptr()) % 64, 0u);
  EXPECT_NE(error_message([&] { (void)t.size(3); }).find("use a dim in [-3, 3)"),
            std::string::npos);
  EXPECT_THROW(Tensor::empty({2, -1}, DType::F32), Error);
}

TEST(Tensor, ZerosForEveryDType) {
  for (DType dtype : {DType::F32, DType::F64, DType::BF16, DType::F16, DType::FP8E4M3,
                      DType::FP8E5M2, DType::I32, DType::I64}) {
    EXPECT_EQ(values_of(Tensor::zeros({3, 5}, dtype)), std::vector<float>(15, 0.0f)) << name(dtype);
  }
}

TEST(Tensor, ScalarAndEmptyShapes) {
  Tensor scalar = Tensor::empty({}, DType::F64);
  EXPECT_EQ(scalar.numel(), 1);
  scalar.fill_(2.5);
  EXPECT_EQ(*scalar.data<double>(), 2.5);

  Tensor nothing = Tensor::zeros({0, 4}, DType::F32);
  EXPECT_EQ(nothing.numel(), 0);
  EXPECT_TRUE(nothing.is_contiguous());
  nothing.copy_from(Tensor::empty({0, 4}, DType::BF16));
  EXPECT_EQ(nothing.view({4, 0}).shape(), (std::vector<int64_t>{4, 0}));
}

TEST(Tensor, FromVectorAndTypedAccess) {
  const Tensor t = Tensor::from_vector<int64_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(t.dtype(), DType::I64);
  EXPECT_EQ(t.data<int64_t>()[5], 6);
  EXPECT_EQ(Tensor::from_vector(std::vector<bfloat16>(3, bfloat16(1.5f))).dtype(), DType::BF16);

  const std::string wrong_type = error_message([&] { (void)t.data<float>(); });
  EXPECT_NE(wrong_type.find("data<f32>()"), std::string::npos) << wrong_type;
  EXPECT_NE(wrong_type.find("i64[2, 3]"), std::string::npos) << wrong_type;
  EXPECT_THROW(Tensor::from_vector<float>({1, 2, 3}, {2, 2}), Error);
}

TEST(Tensor, ViewInfersOneSizeAndSharesStorage) {
  Tensor t = Tensor::from_vector(iota(12), {3, 4});
  Tensor v = t.view({2, -1});
  EXPECT_EQ(v.shape(), (std::vector<int64_t>{2, 6}));
  v.data<float>()[7] = 100.0f;
  EXPECT_EQ(t.data<float>()[7], 100.0f);
  EXPECT_THROW(t.view({5, -1}), Error);
  EXPECT_THROW(t.view({-1, -1}), Error);
  EXPECT_THROW(t.view({13}), Error);
  const std::string strided = error_message([&] { (void)t.transpose(0, 1).view({12}); });
  EXPECT_NE(strided.find("contiguous()"), std::string::npos) << strided;
}

TEST(Tensor, SliceIsAView) {
  Tensor t = Tensor::from_vector(iota(12), {3, 4});
  Tensor rows = t.slice(0, 1, 3);
  EXPECT_EQ(rows.storage_offset(), 4);
  EXPECT_TRUE(rows.is_contiguous());
  EXPECT_EQ(values_of(rows), (std::vector<float>{4, 5, 6, 7, 8, 9, 10, 11}));

  Tensor columns = t.slice(-1, 1, 3);
  EXPECT_FALSE(columns.is_contiguous());
  EXPECT_EQ(values_of(columns), (std::vector<float>{1, 2, 5, 6, 9, 10}));
  columns.fill_(-1.0);
  EXPECT_EQ(values_of(t), (std::vector<float>{0, -1, -1, 3, 4, -1, -1, 7, 8, -1, -1, 11}));

  const std::string bad = error_message([&] { (void)t.slice(1, 2, 5); });
  EXPECT_NE(bad.find("0 <= start <= end <= 4"), std::string::npos) << bad;
}

TEST(Tensor, TransposePermuteAndContiguous) {
  const Tensor t = Tensor::from_vector(iota(6), {2, 3});
  const Tensor tt = t.transpose(0, 1);
  EXPECT_EQ(tt.shape(), (std::vector<int64_t>{3, 2}));
  EXPECT_FALSE(tt.is_contiguous());
  EXPECT_EQ(values_of(tt), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  const Tensor dense = tt.contiguous();
  EXPECT_TRUE(dense.is_contiguous());
  EXPECT_NE(dense.storage(), t.storage());
  EXPECT_EQ(t.contiguous().storage(), t.storage());

  const Tensor cube = Tensor::from_vector(iota(24), {2, 3, 4});
  const Tensor p = cube.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (std::vector<int64_t>{4, 2, 3}));
  const std::vector<float> permuted = values_of(p);
  for (int64_t k = 0; k < 4; ++k) {
    for (int64_t i = 0; i < 2; ++i) {
      for (int64_t j = 0; j < 3; ++j) {
        EXPECT_EQ(permuted[(k * 2 + i) * 3 + j], float(i * 12 + j * 4 + k));
      }
    }
  }
  EXPECT_THROW(cube.permute({0, 0, 1}), Error);
  EXPECT_THROW(cube.permute({0, 1}), Error);
  EXPECT_EQ(values_of(cube.permute({2, 0, 1}).reshape({4, 6})), permuted);
}

TEST(Tensor, CloneIsIndependent) {
  Tensor t = Tensor::from_vector(iota(4));
  Tensor copy = t.clone();
  copy.fill_(7.0);
  EXPECT_EQ(values_of(t), iota(4));
  EXPECT_EQ(values_of(copy), std::vector<float>(4, 7.0f));
}

TEST(Tensor, ToConvertsWithRoundToNearestEven) {
  const Tensor t =
      Tensor::from_vector<float>({1.0f, 1.0f + 0x1p-8f, 1.0f + 0x1p-7f + 0x1p-8f, 1000.0f});
  EXPECT_EQ(t.to(DType::F32).storage(), t.storage());
  const Tensor bf16 = t.to(DType::BF16);
  EXPECT_EQ(bf16.dtype(), DType::BF16);
  EXPECT_EQ(values_of(bf16), (std::vector<float>{1.0f, 1.0f, 1.0f + 0x1p-6f, 1000.0f}));
  const std::vector<float> fp8 = values_of(t.to(DType::FP8E4M3));
  EXPECT_EQ(std::vector<float>(fp8.begin(), fp8.begin() + 3), std::vector<float>(3, 1.0f));
  EXPECT_TRUE(std::isnan(fp8[3]));  // e4m3fn: out of range becomes NaN
  EXPECT_EQ(values_of(Tensor::from_vector<int32_t>({-3, 7}).to(DType::F16)),
            (std::vector<float>{-3.0f, 7.0f}));
  EXPECT_EQ(Tensor::from_vector<float>({2.9f, -2.9f}).to(DType::I64).data<int64_t>()[1], -2);
  EXPECT_THROW(Tensor::from_vector<float>({NAN}).to(DType::I32), Error);
}

TEST(Tensor, CopyFromConvertsBetweenLayouts) {
  const Tensor source = Tensor::from_vector(iota(6), {2, 3});
  Tensor destination = Tensor::zeros({3, 2}, DType::F64);
  destination.transpose(0, 1).copy_from(source);
  EXPECT_EQ(values_of(destination), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  const std::string mismatch = error_message([&] { destination.copy_from(source); });
  EXPECT_NE(mismatch.find("shapes must match"), std::string::npos) << mismatch;
}

TEST(Tensor, CopyFromOverlappingSelfView) {
  Tensor square = Tensor::from_vector(iota(9), {3, 3});
  square.copy_from(square.transpose(0, 1));
  EXPECT_EQ(values_of(square), (std::vector<float>{0, 3, 6, 1, 4, 7, 2, 5, 8}));
}

TEST(Tensor, FromStorageChecksBounds) {
  auto storage = allocate_storage(10 * sizeof(float), Device::cpu());
  const Tensor t = Tensor::from_storage(storage, DType::F32, {3, 2}, {3, 1}, 2);
  EXPECT_EQ(t.data_ptr(), static_cast<char*>(storage->data()) + 8);
  const std::string overflow = error_message([&] {
    (void)Tensor::from_storage(storage, DType::F32, {3, 3}, {3, 1}, 2);
  });
  EXPECT_NE(overflow.find("needs 44 bytes but the storage has 40"), std::string::npos) << overflow;
}

TEST(Tensor, StorageDeleterRunsWhenLastViewIsGone) {
  int deletions = 0;
  {
    void* memory = std::malloc(16);
    auto storage = std::make_shared<Storage>(memory, 16, Device::cpu(), [&](void* p) {
      std::free(p);
      ++deletions;
    });
    Tensor view = Tensor::from_storage(storage, DType::I32, {4}, {1}, 0);
    storage.reset();
    Tensor slice = view.slice(0, 1, 2);
    view = Tensor();
    EXPECT_EQ(deletions, 0);
  }
  EXPECT_EQ(deletions, 1);
}

TEST(Tensor, NonCpuDevicesNeedAnAllocatorAndRejectCpuOps) {
  const std::string no_backend =
      error_message([] { (void)Tensor::empty({2}, DType::F32, Device::cuda(0)); });
  EXPECT_NE(no_backend.find("cuda:0"), std::string::npos) << no_backend;

  // Host memory labelled as a CUDA device stands in for a real backend.
  set_storage_allocator(DeviceKind::CUDA, [](size_t nbytes, Device device) {
    return std::make_shared<Storage>(std::malloc(nbytes), nbytes, device,
                                     [](void* p) { std::free(p); });
  });
  Tensor gpu = Tensor::empty({4, 2}, DType::BF16, Device::cuda(1));
  EXPECT_EQ(gpu.device(), Device::cuda(1));
  EXPECT_EQ(gpu.transpose(0, 1).slice(1, 1, 3).shape(), (std::vector<int64_t>{2, 2}));
  EXPECT_NE(gpu.data<bfloat16>(), nullptr);
  const std::string cpu_only = error_message([&] { gpu.fill_(1.0); });
  EXPECT_NE(cpu_only.find("bf16[4, 2] on cuda:1"), std::string::npos) << cpu_only;
  EXPECT_NE(cpu_only.find("CPU"), std::string::npos) << cpu_only;
  EXPECT_THROW(gpu.clone(), Error);
  EXPECT_THROW(gpu.to(DType::F32), Error);
  EXPECT_THROW(
      Tensor::zeros({2}, DType::F32).copy_from(Tensor::empty({2}, DType::F32, Device::cuda(0))),
      Error);
  set_storage_allocator(DeviceKind::CUDA, nullptr);
  EXPECT_THROW(Tensor::empty({2}, DType::F32, Device::cuda(0)), Error);
}

TEST(Tensor, UndefinedTensorSaysSo) {
  const Tensor undefined;
  EXPECT_FALSE(undefined.defined());
  const std::string message = error_message([&] { (void)undefined.clone(); });
  EXPECT_NE(message.find("undefined tensor"), std::string::npos) << message;
}

TEST(ForEachOffsetPair, VisitsRowMajorUnderBothLayouts) {
  std::vector<std::pair<int64_t, int64_t>> visited;
  for_each_offset_pair({2, 3}, {3, 1}, 0, {1, 2}, 10,
                       [&](int64_t a, int64_t b) { visited.emplace_back(a, b); });
  const std::vector<std::pair<int64_t, int64_t>> expected = {{0, 10}, {1, 12}, {2, 14},
                                                             {3, 11}, {4, 13}, {5, 15}};
  EXPECT_EQ(visited, expected);
}

}  // namespace
}  // namespace moebench

namespace moebench {
namespace {

// Host tensors through the transfer functions (what a build without CUDA
// has): to_host and to_device(cpu) copy, copy_into takes a strided source.
TEST(CoreDeviceTransfer, HostTensorsCopyAndStridedSourcesArrive) {
  const Tensor matrix = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor columns = matrix.slice(1, 1, 3);  // {{2, 3}, {5, 6}}, not contiguous
  ASSERT_FALSE(columns.is_contiguous());
  EXPECT_EQ(values_of(to_host(columns)), (std::vector<float>{2, 3, 5, 6}));
  const Tensor copy = to_device(matrix, Device::cpu());
  EXPECT_NE(copy.data_ptr(), matrix.data_ptr());
  EXPECT_EQ(values_of(copy), values_of(matrix));

  Tensor destination = Tensor::zeros({2, 2}, DType::F32);
  copy_into(destination, columns);
  EXPECT_EQ(values_of(destination), (std::vector<float>{2, 3, 5, 6}));
  Tensor wrong = Tensor::zeros({4}, DType::F32);
  EXPECT_THROW(copy_into(wrong, columns), Error);
}

}  // namespace
}  // namespace moebench
