// Every NcclCommunicator operation against the MpiCommunicator's result on
// the same data, for every dtype NCCL moves here. MPI moves no bf16 or f16,
// so those cross MPI as f32; the values are small integers, exact in every
// dtype and in any order of summation, so both transports must agree to the
// bit. Outputs start out holding a value no operation here writes, so an
// element left unwritten fails.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <optional>
#include <string>

#include "gpu_mpi_test_world.h"
#include "moebench/core/device_transfer.h"
#include "moebench/core/error.h"
#include "moebench/dist/mpi_communicator.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/train/placement_communicator.h"

namespace moebench::dist {
namespace {

using ::testing::HasSubstr;

constexpr double kUnwritten = -1024;
// Elements per rank and chunk: odd and past NCCL's smallest protocol sizes.
constexpr int64_t kChunk = 1031;

Device gpu() { return nccl_world().device(); }

DType mpi_dtype(DType dtype) { return dtype == DType::BF16 || dtype == DType::F16 ? DType::F32 : dtype; }

// One tensor's values for both transports: on the host for MPI, on this
// rank's GPU for NCCL.
struct Twin {
  Tensor host;
  Tensor gpu;
};

Twin twin(const std::vector<double>& values, DType dtype) {
  const Tensor f64 = Tensor::from_vector(values);
  return {f64.to(mpi_dtype(dtype)), to_device(f64.to(dtype), gpu())};
}

Twin unwritten(int64_t numel, DType dtype) { return twin(std::vector<double>(size_t(numel), kUnwritten), dtype); }

// `numel` integers in [-6, 6] that differ with the rank, the position and
// the salt (a hash, so a shifted offset shows): sums over 8 ranks stay exact
// in bf16.
std::vector<double> rank_data(int rank, int64_t numel, uint64_t salt = 0) {
  std::vector<double> data;
  for (int64_t i = 0; i < numel; ++i) {
    uint64_t x = (uint64_t(rank) << 40) ^ (salt << 32) ^ uint64_t(i);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    data.push_back(double((x ^ (x >> 31)) % 13) - 6);
  }
  return data;
}

std::vector<double> values(const Tensor& tensor) {
  const Tensor f64 = (tensor.device().is_cuda() ? to_host(tensor) : tensor).to(DType::F64);
  const double* data = f64.data<double>();
  return std::vector<double>(data, data + f64.numel());
}

// NCCL's result (on the GPU) equals MPI's (on the host), element for element.
::testing::AssertionResult agree(const Twin& result) {
  const std::vector<double> nccl = values(result.gpu);
  const std::vector<double> mpi = values(result.host);
  if (nccl.size() != mpi.size()) {
    return ::testing::AssertionFailure() << "NCCL gave " << nccl.size() << " elements, MPI " << mpi.size();
  }
  int64_t differing = 0, first = -1;
  for (size_t i = 0; i < nccl.size(); ++i) {
    if (nccl[i] == mpi[i]) continue;
    if (first < 0) first = int64_t(i);
    ++differing;
  }
  if (differing == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << differing << " of " << nccl.size() << " elements differ; first at "
                                       << first << ": NCCL " << nccl[size_t(first)] << ", MPI "
                                       << mpi[size_t(first)] << " (on rank " << mpi_world().rank() << ")";
}

int64_t sum(const std::vector<int64_t>& counts) { return std::accumulate(counts.begin(), counts.end(), int64_t{0}); }

TEST(NcclCommunicator, SpansTheRanksOfMpiOnePerGpu) {
  EXPECT_GE(nccl_world().size(), 2);
  EXPECT_EQ(nccl_world().size(), mpi_world().size());
  EXPECT_EQ(nccl_world().rank(), mpi_world().rank());
  EXPECT_EQ(nccl_world().label(), "world");
}

class NcclAgreesWithMpi : public ::testing::TestWithParam<DType> {
 protected:
  DType dtype() const { return GetParam(); }
  int rank() const { return mpi_world().rank(); }
  int size() const { return mpi_world().size(); }
};

TEST_P(NcclAgreesWithMpi, AllReduce) {
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax}) {
    const Twin tensor = twin(rank_data(rank(), kChunk), dtype());
    mpi_world().all_reduce(tensor.host, op);
    nccl_world().all_reduce(tensor.gpu, op);
    EXPECT_TRUE(agree(tensor)) << name(op);
  }
}

TEST_P(NcclAgreesWithMpi, ReduceScatter) {
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax}) {
    const Twin input = twin(rank_data(rank(), kChunk * size()), dtype());
    const Twin output = unwritten(kChunk, dtype());
    mpi_world().reduce_scatter(input.host, output.host, op);
    nccl_world().reduce_scatter(input.gpu, output.gpu, op);
    EXPECT_TRUE(agree(output)) << name(op);
  }
}

TEST_P(NcclAgreesWithMpi, AllGather) {
  const Twin input = twin(rank_data(rank(), kChunk), dtype());
  const Twin output = unwritten(kChunk * size(), dtype());
  mpi_world().all_gather(input.host, output.host);
  nccl_world().all_gather(input.gpu, output.gpu);
  EXPECT_TRUE(agree(output));
}

// Uneven runs, empty for every third pair, never empty to the rank itself.
int64_t elements_sent(int from, int to) { return int64_t((from + 2 * to + 1) % 3) * 517; }

TEST_P(NcclAgreesWithMpi, AllToAllWithUnevenAndEmptySplits) {
  std::vector<int64_t> send_counts, recv_counts;
  for (int peer = 0; peer < size(); ++peer) {
    send_counts.push_back(elements_sent(rank(), peer));
    recv_counts.push_back(elements_sent(peer, rank()));
  }
  const Twin input = twin(rank_data(rank(), sum(send_counts)), dtype());
  const Twin output = unwritten(sum(recv_counts), dtype());
  mpi_world().all_to_all(input.host, send_counts, output.host, recv_counts);
  nccl_world().all_to_all(input.gpu, send_counts, output.gpu, recv_counts);
  EXPECT_TRUE(agree(output));
}

TEST_P(NcclAgreesWithMpi, SendAndRecvPassAroundARing) {
  const int next = (rank() + 1) % size(), previous = (rank() + size() - 1) % size();
  const Twin outgoing = twin(rank_data(rank(), kChunk), dtype());
  const Twin incoming = unwritten(kChunk, dtype());
  // Even ranks send first and odd ranks receive first, so no rank waits on
  // a peer that is itself waiting (the worlds here have an even size).
  for (Communicator* transport : {&mpi_world(), static_cast<Communicator*>(&nccl_world())}) {
    const bool nccl = transport == &nccl_world();
    const Tensor& out = nccl ? outgoing.gpu : outgoing.host;
    const Tensor& in = nccl ? incoming.gpu : incoming.host;
    if (rank() % 2 == 0) {
      transport->send(out, next);
      transport->recv(in, previous);
    } else {
      transport->recv(in, previous);
      transport->send(out, next);
    }
  }
  EXPECT_TRUE(agree(incoming));
}

TEST_P(NcclAgreesWithMpi, BatchSendRecvShiftsBothWaysInOneCall) {
  // On 2 ranks both neighbours are one rank: the transfers match in list order.
  const int next = (rank() + 1) % size(), previous = (rank() + size() - 1) % size();
  const Twin forward = twin(rank_data(rank(), kChunk, 1), dtype());
  const Twin backward = twin(rank_data(rank(), kChunk + 2, 2), dtype());
  const Twin from_previous = unwritten(kChunk, dtype());
  const Twin from_next = unwritten(kChunk + 2, dtype());
  mpi_world().batch_send_recv({{forward.host, next}, {backward.host, previous}},
                              {{from_previous.host, previous}, {from_next.host, next}});
  nccl_world().batch_send_recv({{forward.gpu, next}, {backward.gpu, previous}},
                               {{from_previous.gpu, previous}, {from_next.gpu, next}});
  EXPECT_TRUE(agree(from_previous));
  EXPECT_TRUE(agree(from_next));
}

TEST_P(NcclAgreesWithMpi, BroadcastCopiesTheRootsTensor) {
  const int root = size() - 1;
  const Twin tensor = twin(rank_data(rank(), kChunk), dtype());
  mpi_world().broadcast(tensor.host, root);
  nccl_world().broadcast(tensor.gpu, root);
  EXPECT_TRUE(agree(tensor));
}

TEST_P(NcclAgreesWithMpi, SplitGroupsByColourAndOrdersByKey) {
  // Even and odd ranks form two groups, each ordered from the highest rank.
  const std::unique_ptr<Communicator> mpi = mpi_world().split(rank() % 2, -rank());
  const std::unique_ptr<Communicator> nccl = nccl_world().split(rank() % 2, -rank());
  ASSERT_NE(nccl, nullptr);
  EXPECT_EQ(nccl->rank(), mpi->rank());
  EXPECT_EQ(nccl->size(), mpi->size());
  const Twin input = twin(rank_data(rank(), kChunk), dtype());
  const Twin output = unwritten(kChunk * mpi->size(), dtype());
  mpi->all_gather(input.host, output.host);
  nccl->all_gather(input.gpu, output.gpu);
  EXPECT_TRUE(agree(output));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, NcclAgreesWithMpi,
                         ::testing::Values(DType::F32, DType::F64, DType::BF16, DType::F16, DType::I32, DType::I64),
                         [](const ::testing::TestParamInfo<DType>& info) { return std::string(name(info.param)); });

TEST(NcclCommunicator, SplitLeavesRanksWithoutAColourOutAndNamesTheGroup) {
  const int rank = mpi_world().rank();
  const std::unique_ptr<Communicator> first =
      nccl_world().split(rank == 0 ? std::optional<int>(3) : std::nullopt, 0);
  EXPECT_EQ(first != nullptr, rank == 0);
  if (first) {
    EXPECT_EQ(first->size(), 1);
    EXPECT_EQ(dynamic_cast<NcclCommunicator&>(*first).label(), "world/colour 3");
  }
}

TEST(NcclCommunicator, BarrierReturnsOnEveryRank) {
  mpi_world().barrier();
  nccl_world().barrier();
}

// ParallelState over NCCL builds every group kind as it does over MPI: the
// same members in the same order, reducing to the same sums.
TEST(NcclCommunicator, ParallelStateGroupsMatchMpis) {
  const int n = mpi_world().size();
  const ParallelSizes sizes{.world_size = n, .tensor = 2, .pipeline = n / 2};
  const ParallelState over_mpi(mpi_world(), sizes);
  const ParallelState over_nccl(nccl_world(), sizes);
  for (GroupKind kind : kGroupKinds) {
    ASSERT_EQ(over_nccl.is_member(kind), over_mpi.is_member(kind)) << name(kind);
    if (!over_mpi.is_member(kind)) continue;
    Communicator& mpi = over_mpi.group(kind);
    Communicator& nccl = over_nccl.group(kind);
    EXPECT_EQ(nccl.rank(), mpi.rank()) << name(kind);
    EXPECT_EQ(nccl.size(), mpi.size()) << name(kind);
    const Twin tensor = twin(rank_data(mpi_world().rank(), kChunk, uint64_t(kind)), DType::BF16);
    mpi.all_reduce(tensor.host, ReduceOp::kSum);
    nccl.all_reduce(tensor.gpu, ReduceOp::kSum);
    EXPECT_TRUE(agree(tensor)) << name(kind);
  }
}

TEST(NcclCommunicator, RejectsBadArgumentsAsMpiDoes) {
  NcclCommunicator& world = nccl_world();
  const int n = world.size();
  const Tensor input = to_device(Tensor::zeros({n}, DType::F32), gpu());
  EXPECT_THAT([&] { world.all_reduce(Tensor::zeros({n}, DType::F32), ReduceOp::kSum); },
              ::testing::ThrowsMessage<Error>(HasSubstr("moves tensors on " + gpu().str())));
  EXPECT_THAT([&] { world.broadcast(Tensor::empty({2}, DType::FP8E4M3, gpu()), 0); },
              ::testing::ThrowsMessage<Error>(HasSubstr("f32, f64, bf16, f16, i32 and i64")));
  // The contract's own checks read as they do for MPI.
  EXPECT_THAT([&] { world.all_gather(input, to_device(Tensor::zeros({n + 1}, DType::F32), gpu())); },
              ::testing::ThrowsMessage<Error>(HasSubstr("elements in its output")));
  const Tensor output = to_device(Tensor::zeros({n}, DType::F32), gpu());
  EXPECT_THAT([&] { world.all_to_all(input, std::vector<int64_t>(size_t(n), 2), output,
                                     std::vector<int64_t>(size_t(n), 1)); },
              ::testing::ThrowsMessage<Error>(HasSubstr("the sum of its send counts")));
  EXPECT_THAT([&] { world.send(input, world.rank()); },
              ::testing::ThrowsMessage<Error>(HasSubstr("pass another rank")));
}

TEST(PlacementCommunicator, GivesNcclOnTheGpuAndMpiOnTheCpu) {
  const std::unique_ptr<Communicator> on_gpu = train::communicator_for_placement(mpi_world(), gpu());
  ASSERT_NE(dynamic_cast<NcclCommunicator*>(on_gpu.get()), nullptr);
  EXPECT_EQ(on_gpu->rank(), mpi_world().rank());
  const std::unique_ptr<Communicator> on_cpu = train::communicator_for_placement(mpi_world(), Device::cpu());
  EXPECT_NE(dynamic_cast<MpiCommunicator*>(on_cpu.get()), nullptr);

  const Twin tensor = twin(rank_data(mpi_world().rank(), kChunk), DType::F32);
  on_cpu->all_reduce(tensor.host, ReduceOp::kSum);
  on_gpu->all_reduce(tensor.gpu, ReduceOp::kSum);
  EXPECT_TRUE(agree(tensor));
}

}  // namespace
}  // namespace moebench::dist
