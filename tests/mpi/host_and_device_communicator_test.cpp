// HostAndDeviceCommunicator on CPU ranks: host tensors go to the host
// transport only, over every operation and through split(); the device
// transport here is a second MPI copy that counts its calls (the NCCL half
// with CUDA tensors runs in tests/gpu_mpi).
#include "moebench/dist/host_and_device_communicator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <numeric>
#include <vector>

#include "moebench/core/error.h"
#include "moebench/dist/single_rank_communicator.h"
#include "mpi_test_world.h"

namespace moebench::dist {
namespace {

// Forwards every operation to `inner`, counting them in a counter its splits share.
class CountingCommunicator final : public Communicator {
 public:
  CountingCommunicator(std::unique_ptr<Communicator> inner, std::shared_ptr<int> calls)
      : inner_(std::move(inner)), calls_(std::move(calls)) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }

 private:
  void all_reduce_impl(const Tensor& t, ReduceOp op) override { counted().all_reduce(t, op); }
  void reduce_scatter_impl(const Tensor& in, const Tensor& out, ReduceOp op) override {
    counted().reduce_scatter(in, out, op);
  }
  void all_gather_impl(const Tensor& in, const Tensor& out) override { counted().all_gather(in, out); }
  void all_to_all_impl(const Tensor& in, const std::vector<int64_t>& sends, const Tensor& out,
                       const std::vector<int64_t>& recvs) override {
    counted().all_to_all(in, sends, out, recvs);
  }
  void send_impl(const Tensor& t, int peer) override { counted().send(t, peer); }
  void recv_impl(const Tensor& t, int peer) override { counted().recv(t, peer); }
  void batch_send_recv_impl(const std::vector<PeerTransfer>& sends, const std::vector<PeerTransfer>& recvs) override {
    counted().batch_send_recv(sends, recvs);
  }
  void broadcast_impl(const Tensor& t, int root) override { counted().broadcast(t, root); }
  void barrier_impl() override { counted().barrier(); }
  std::unique_ptr<Communicator> split_impl(std::optional<int> color, int key) override {
    std::unique_ptr<Communicator> group = inner_->split(color, key);
    if (!group) return nullptr;
    return std::make_unique<CountingCommunicator>(std::move(group), calls_);
  }

  // The inner communicator, for one more call.
  Communicator& counted() {
    ++*calls_;
    return *inner_;
  }

  std::unique_ptr<Communicator> inner_;
  std::shared_ptr<int> calls_;
};

struct Counted {
  Counted()
      : device_calls(std::make_shared<int>(0)),
        host_calls(std::make_shared<int>(0)),
        communicator(std::make_unique<CountingCommunicator>(test_world().split(0, test_world().rank()), device_calls),
                     std::make_unique<CountingCommunicator>(test_world().split(0, test_world().rank()), host_calls)) {}
  std::shared_ptr<int> device_calls;
  std::shared_ptr<int> host_calls;
  HostAndDeviceCommunicator communicator;
};

TEST(HostAndDeviceCommunicator, HostTensorsTakeTheHostTransportOnly) {
  Counted counted;
  Communicator& c = counted.communicator;
  const int rank = c.rank(), size = c.size();
  EXPECT_EQ(size, test_world().size());
  EXPECT_EQ(rank, test_world().rank());

  Tensor loss = Tensor::from_vector(std::vector<double>{double(rank + 1)});
  c.all_reduce(loss, ReduceOp::kSum);
  EXPECT_EQ(loss.data<double>()[0], double(size) * (size + 1) / 2);

  const Tensor mine = Tensor::from_vector(std::vector<int64_t>{rank});
  const Tensor all = Tensor::zeros({size}, DType::I64);
  c.all_gather(mine, all);
  for (int r = 0; r < size; ++r) EXPECT_EQ(all.data<int64_t>()[r], r);

  std::vector<float> ones(size_t(size), 1.0f);
  const Tensor reduced = Tensor::zeros({1}, DType::F32);
  c.reduce_scatter(Tensor::from_vector(ones), reduced, ReduceOp::kSum);
  EXPECT_EQ(reduced.data<float>()[0], float(size));

  Tensor root_value = Tensor::from_vector(std::vector<int32_t>{rank == 0 ? 42 : -1});
  c.broadcast(root_value, 0);
  EXPECT_EQ(root_value.data<int32_t>()[0], 42);

  const int next = (rank + 1) % size, previous = (rank + size - 1) % size;
  const Tensor received = Tensor::zeros({1}, DType::I32);
  c.batch_send_recv({{Tensor::from_vector(std::vector<int32_t>{rank}), next}}, {{received, previous}});
  EXPECT_EQ(received.data<int32_t>()[0], previous);

  EXPECT_EQ(*counted.host_calls, 5);
  EXPECT_EQ(*counted.device_calls, 0);
  c.barrier();  // waits on both transports
  EXPECT_EQ(*counted.host_calls, 6);
  EXPECT_EQ(*counted.device_calls, 1);
}

TEST(HostAndDeviceCommunicator, SplitsBothTransportsInStep) {
  Counted counted;
  const int rank = counted.communicator.rank();
  // Even and odd ranks, ordered by descending rank; rank 0 joins no group.
  const std::optional<int> color = rank == 0 ? std::nullopt : std::optional<int>(rank % 2);
  const std::unique_ptr<Communicator> group = counted.communicator.split(color, -rank);
  if (rank == 0) {
    EXPECT_EQ(group, nullptr);
    return;
  }
  ASSERT_NE(dynamic_cast<HostAndDeviceCommunicator*>(group.get()), nullptr);
  int members = 0, above = 0;
  for (int r = 1; r < test_world().size(); ++r)
    if (r % 2 == rank % 2) ++members, above += r > rank;
  EXPECT_EQ(group->size(), members);
  EXPECT_EQ(group->rank(), above);
  Tensor ranks = Tensor::from_vector(std::vector<int64_t>{rank});
  group->all_reduce(ranks, ReduceOp::kMax);
  const int highest = (test_world().size() - 1) % 2 == rank % 2 ? test_world().size() - 1 : test_world().size() - 2;
  EXPECT_EQ(ranks.data<int64_t>()[0], highest);
  EXPECT_EQ(*counted.device_calls, 0);
}

TEST(HostAndDeviceCommunicator, RejectsTransportsOverDifferentRanks) {
  EXPECT_THAT(
      [] {
        HostAndDeviceCommunicator(std::make_unique<SingleRankCommunicator>(), test_world().split(0, test_world().rank()));
      },
      ::testing::ThrowsMessage<Error>(::testing::HasSubstr("build both over the same ranks in the same order")));
}

}  // namespace
}  // namespace moebench::dist
