// NcclCommunicator on one rank, no MPI: NCCL's one-rank communicator makes
// every collective the identity or a copy, as SingleRankCommunicator does on
// the host. Outputs start out holding a value no operation writes, so an
// element left unwritten fails.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <vector>

#include "moebench/core/cuda_allocator.h"
#include "moebench/core/device_transfer.h"
#include "moebench/core/error.h"
#include "moebench/dist/nccl_communicator.h"
#include "moebench/dist/single_rank_communicator.h"
#include "moebench/ops/cuda_stream.h"

namespace moebench::dist {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

const Device kGpu = Device::cuda(0);

Tensor on_gpu(const std::vector<float>& values, DType dtype = DType::F32) {
  return to_device(Tensor::from_vector(values).to(dtype), kGpu);
}

Tensor unwritten(int64_t numel) { return on_gpu(std::vector<float>(size_t(numel), -1024.f)); }

std::vector<float> values(const Tensor& tensor) {
  const Tensor host = to_host(tensor).to(DType::F32);
  return std::vector<float>(host.data<float>(), host.data<float>() + host.numel());
}

class OneRankNccl : public ::testing::Test {
 protected:
  void SetUp() override { enable_cuda_tensors(); }

  SingleRankCommunicator bootstrap_;
};

TEST_F(OneRankNccl, EveryCollectiveIsTheIdentityOrACopy) {
  NcclCommunicator nccl(bootstrap_, kGpu, ops::current_stream);
  EXPECT_EQ(nccl.rank(), 0);
  EXPECT_EQ(nccl.size(), 1);
  const std::vector<float> data = {1.5f, -2.f, 3.f, 0.25f, -7.f};

  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax}) {
    for (DType dtype : {DType::F32, DType::BF16}) {
      const Tensor tensor = on_gpu(data, dtype);
      nccl.all_reduce(tensor, op);
      EXPECT_THAT(values(tensor), ElementsAreArray(data)) << name(op) << " " << name(dtype);
    }
    const Tensor scattered = unwritten(5);
    nccl.reduce_scatter(on_gpu(data), scattered, op);
    EXPECT_THAT(values(scattered), ElementsAreArray(data)) << name(op);
  }
  const Tensor gathered = unwritten(5);
  nccl.all_gather(on_gpu(data), gathered);
  EXPECT_THAT(values(gathered), ElementsAreArray(data));

  const Tensor exchanged = unwritten(5);
  nccl.all_to_all(on_gpu(data), {5}, exchanged, {5});
  EXPECT_THAT(values(exchanged), ElementsAreArray(data));

  const Tensor broadcast = on_gpu({1.f, -2.f, 3.f}, DType::I64);
  nccl.broadcast(broadcast, 0);
  EXPECT_THAT(values(broadcast), ElementsAreArray({1.f, -2.f, 3.f}));
  nccl.barrier();
}

TEST_F(OneRankNccl, SplitGivesAOneRankGroupOrNone) {
  NcclCommunicator nccl(bootstrap_, kGpu, ops::current_stream);
  const std::unique_ptr<Communicator> group = nccl.split(2, 0);
  ASSERT_NE(group, nullptr);
  EXPECT_EQ(group->size(), 1);
  EXPECT_EQ(dynamic_cast<NcclCommunicator&>(*group).label(), "world/colour 2");
  const Tensor tensor = on_gpu({4.f, 5.f});
  group->all_reduce(tensor, ReduceOp::kSum);
  EXPECT_THAT(values(tensor), ElementsAreArray({4.f, 5.f}));
  EXPECT_EQ(nccl.split(std::nullopt, 0), nullptr);
}

TEST_F(OneRankNccl, RejectsHostTensorsOtherDtypesAndAHostDevice) {
  NcclCommunicator nccl(bootstrap_, kGpu, ops::current_stream);
  EXPECT_THAT([&] { nccl.all_reduce(Tensor::zeros({2}, DType::F32), ReduceOp::kSum); },
              ::testing::ThrowsMessage<Error>(
                  HasSubstr("moves tensors on cuda:0 (this rank's GPU), got f32[2] on cpu")));
  EXPECT_THAT([&] { nccl.all_reduce(Tensor::empty({2}, DType::FP8E5M2, kGpu), ReduceOp::kMax); },
              ::testing::ThrowsMessage<Error>(HasSubstr("it moves f32, f64, bf16, f16, i32 and i64")));
  EXPECT_THAT([&] { NcclCommunicator(bootstrap_, Device::cpu(), ops::current_stream); },
              ::testing::ThrowsMessage<Error>(HasSubstr("needs a CUDA device, got cpu")));
}

}  // namespace
}  // namespace moebench::dist
