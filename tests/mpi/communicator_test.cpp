// Every MpiCommunicator operation on 2 and 4 ranks against values worked out
// by hand for each world size (tables keyed by size), so a wrong offset or
// rank order shows as a wrong number, not as a formula agreeing with itself.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "moebench/core/error.h"
#include "mpi_test_world.h"

namespace moebench::dist {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

template <typename T>
std::vector<T> values(const Tensor& tensor) {
  const T* data = tensor.data<T>();
  return std::vector<T>(data, data + tensor.numel());
}

// The hand-computed table for this world size; the binary runs on 2 and 4.
template <typename Table>
const auto& for_world(const Table& table) {
  const auto found = table.find(test_world().size());
  if (found == table.end()) throw Error("no expected values for this world size");
  return found->second;
}

TEST(MpiCommunicator, RankAndSizeMatchTheLaunch) {
  Communicator& world = test_world();
  EXPECT_GE(world.size(), 2);
  EXPECT_GE(world.rank(), 0);
  EXPECT_LT(world.rank(), world.size());
}

TEST(MpiCommunicator, AllReduceSumsFloat32) {
  Communicator& world = test_world();
  const float r = float(world.rank());
  Tensor tensor = Tensor::from_vector(std::vector<float>{r + 1, 10 * (r + 1), -r}, {3});
  world.all_reduce(tensor, ReduceOp::kSum);
  const std::map<int, std::vector<float>> expected = {{2, {3, 30, -1}}, {4, {10, 100, -6}}};
  EXPECT_THAT(values<float>(tensor), ElementsAreArray(for_world(expected)));
}

TEST(MpiCommunicator, AllReduceTakesTheMaximumOfEveryDtype) {
  Communicator& world = test_world();
  const int r = world.rank();
  // Rank r holds [r, -r]: the maximum is [size - 1, 0].
  const std::map<int, std::vector<int64_t>> expected = {{2, {1, 0}}, {4, {3, 0}}};

  Tensor f64 = Tensor::from_vector(std::vector<double>{double(r), double(-r)});
  Tensor i64 = Tensor::from_vector(std::vector<int64_t>{r, -r});
  Tensor i32 = Tensor::from_vector(std::vector<int32_t>{r, -r});
  world.all_reduce(f64, ReduceOp::kMax);
  world.all_reduce(i64, ReduceOp::kMax);
  world.all_reduce(i32, ReduceOp::kMax);
  const std::vector<int64_t>& want = for_world(expected);
  EXPECT_THAT(values<double>(f64), ElementsAreArray({double(want[0]), double(want[1])}));
  EXPECT_THAT(values<int64_t>(i64), ElementsAreArray(want));
  EXPECT_THAT(values<int32_t>(i32), ElementsAreArray({int32_t(want[0]), int32_t(want[1])}));
}

TEST(MpiCommunicator, ReduceScatterSumsEachRanksChunk) {
  Communicator& world = test_world();
  const int n = world.size();
  // Rank r's input element j is 100 r + j, in n chunks of 2.
  std::vector<float> input;
  for (int j = 0; j < 2 * n; ++j) input.push_back(float(100 * world.rank() + j));
  Tensor output = Tensor::empty({2}, DType::F32);
  world.reduce_scatter(Tensor::from_vector(input), output, ReduceOp::kSum);
  // Rank q gets sum over r of (100 r + 2q + k), k = 0, 1.
  const std::map<int, std::vector<std::vector<float>>> expected = {
      {2, {{100, 102}, {104, 106}}},
      {4, {{600, 604}, {608, 612}, {616, 620}, {624, 628}}}};
  EXPECT_THAT(values<float>(output), ElementsAreArray(for_world(expected)[world.rank()]));
}

TEST(MpiCommunicator, ReduceScatterTakesTheMaximum) {
  Communicator& world = test_world();
  const int n = world.size();
  // Rank r's chunk q is [r * q]: the maximum for rank q is (n - 1) q.
  std::vector<int64_t> input;
  for (int q = 0; q < n; ++q) input.push_back(int64_t(world.rank()) * q);
  Tensor output = Tensor::empty({1}, DType::I64);
  world.reduce_scatter(Tensor::from_vector(input), output, ReduceOp::kMax);
  const std::map<int, std::vector<int64_t>> expected = {{2, {0, 1}}, {4, {0, 3, 6, 9}}};
  EXPECT_EQ(values<int64_t>(output)[0], for_world(expected)[world.rank()]);
}

TEST(MpiCommunicator, AllGatherConcatenatesInRankOrder) {
  Communicator& world = test_world();
  const int64_t r = world.rank();
  Tensor output = Tensor::empty({world.size(), 2}, DType::I64);
  world.all_gather(Tensor::from_vector(std::vector<int64_t>{r, -10 * r}), output);
  const std::map<int, std::vector<int64_t>> expected = {
      {2, {0, 0, 1, -10}}, {4, {0, 0, 1, -10, 2, -20, 3, -30}}};
  EXPECT_THAT(values<int64_t>(output), ElementsAreArray(for_world(expected)));
}

// Rank r sends (r + d) % 3 elements to rank d (some zero, all uneven), valued
// 100 r + 10 d + i, so each received element names its sender and slot.
int64_t elements_sent(int from, int to) { return (from + to) % 3; }

TEST(MpiCommunicator, AllToAllMovesUnevenSplits) {
  Communicator& world = test_world();
  const int n = world.size();
  const int r = world.rank();
  std::vector<float> input;
  std::vector<int64_t> send_counts;
  std::vector<int64_t> recv_counts;
  for (int d = 0; d < n; ++d) {
    send_counts.push_back(elements_sent(r, d));
    recv_counts.push_back(elements_sent(d, r));
    for (int i = 0; i < elements_sent(r, d); ++i) input.push_back(float(100 * r + 10 * d + i));
  }
  int64_t received = 0;
  for (int64_t count : recv_counts) received += count;
  Tensor output = Tensor::empty({received}, DType::F32);
  world.all_to_all(Tensor::from_vector(input), send_counts, output, recv_counts);

  const std::map<int, std::vector<std::vector<float>>> expected = {
      {2, {{100}, {10, 110, 111}}},
      {4, {{100, 200, 201}, {10, 110, 111, 310}, {20, 21, 220, 320, 321}, {130, 230, 231}}}};
  EXPECT_THAT(values<float>(output), ElementsAreArray(for_world(expected)[r]));
}

TEST(MpiCommunicator, SendAndRecvPassAroundARing) {
  Communicator& world = test_world();
  const int n = world.size();
  const int r = world.rank();
  const Tensor outgoing = Tensor::from_vector(std::vector<double>{double(r), 0.5 * r});
  Tensor incoming = Tensor::empty({2}, DType::F64);
  // Even ranks send first and odd ranks receive first, so no rank waits on a
  // peer that is itself waiting (the worlds here have an even size).
  if (r % 2 == 0) {
    world.send(outgoing, (r + 1) % n);
    world.recv(incoming, (r + n - 1) % n);
  } else {
    world.recv(incoming, (r + n - 1) % n);
    world.send(outgoing, (r + 1) % n);
  }
  const std::map<int, std::vector<std::vector<double>>> expected = {
      {2, {{1, 0.5}, {0, 0}}}, {4, {{3, 1.5}, {0, 0}, {1, 0.5}, {2, 1}}}};
  EXPECT_THAT(values<double>(incoming), ElementsAreArray(for_world(expected)[r]));
}

TEST(MpiCommunicator, BatchSendRecvShiftsBothWaysRoundTheRingInOneCall) {
  // Every rank sends to both neighbours and receives from both in one call,
  // which blocking sends in this order could not do. Between two ranks the
  // transfers match in list order: on 2 ranks both neighbours are one rank.
  Communicator& world = test_world();
  const int n = world.size();
  const int r = world.rank();
  const int next = (r + 1) % n, previous = (r + n - 1) % n;
  Tensor from_previous = Tensor::empty({1}, DType::I64);
  Tensor from_next = Tensor::empty({1}, DType::I64);
  world.batch_send_recv({{Tensor::from_vector(std::vector<int64_t>{10 * r + 1}), next},
                         {Tensor::from_vector(std::vector<int64_t>{10 * r + 2}), previous}},
                        {{from_previous, previous}, {from_next, next}});
  const std::map<int, std::vector<std::vector<int64_t>>> expected = {
      {2, {{11, 12}, {1, 2}}}, {4, {{31, 12}, {1, 22}, {11, 32}, {21, 2}}}};
  EXPECT_THAT((std::vector<int64_t>{from_previous.data<int64_t>()[0], from_next.data<int64_t>()[0]}),
              ElementsAreArray(for_world(expected)[r]));
}

TEST(MpiCommunicator, RecvRejectsAMessageOfAnotherLength) {
  Communicator& world = test_world();
  if (world.rank() == 0) {
    world.send(Tensor::from_vector(std::vector<int32_t>{1, 2, 3}), 1);
  } else if (world.rank() == 1) {
    Tensor incoming = Tensor::empty({4}, DType::I32);
    try {
      world.recv(incoming, 0);
      ADD_FAILURE() << "recv of 3 elements into 4 did not throw";
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr("got 3 elements from rank 0"));
    }
  }
}

TEST(MpiCommunicator, BroadcastCopiesTheRootsTensor) {
  Communicator& world = test_world();
  const int root = world.size() - 1;
  Tensor tensor = Tensor::zeros({2}, DType::F32);
  if (world.rank() == root) tensor.copy_from(Tensor::from_vector(std::vector<float>{7.5f, -1.f}));
  world.broadcast(tensor, root);
  EXPECT_THAT(values<float>(tensor), ElementsAreArray({7.5f, -1.f}));
}

TEST(MpiCommunicator, BarrierReturnsOnEveryRank) { test_world().barrier(); }

TEST(MpiCommunicator, SplitGroupsByColourAndOrdersByKey) {
  Communicator& world = test_world();
  const int r = world.rank();
  // Even and odd ranks form two groups, each ordered from the highest rank.
  std::unique_ptr<Communicator> parity = world.split(r % 2, -r);
  ASSERT_NE(parity, nullptr);
  Tensor members = Tensor::empty({parity->size()}, DType::I32);
  parity->all_gather(Tensor::from_vector(std::vector<int32_t>{r}), members);
  const std::map<int, std::vector<std::vector<int32_t>>> expected = {
      {2, {{0}, {1}}}, {4, {{2, 0}, {3, 1}, {2, 0}, {3, 1}}}};
  EXPECT_THAT(values<int32_t>(members), ElementsAreArray(for_world(expected)[r]));

  // Only rank 0 joins a group; the others get none.
  std::unique_ptr<Communicator> first =
      world.split(r == 0 ? std::optional<int>(0) : std::nullopt, 0);
  EXPECT_EQ(first != nullptr, r == 0);
  if (first) {
    EXPECT_EQ(first->size(), 1);
  }
}

TEST(MpiCommunicator, RejectsBadArgumentsOnEveryRankAlike) {
  Communicator& world = test_world();
  const int n = world.size();
  const Tensor input = Tensor::zeros({n}, DType::F32);
  EXPECT_THAT([&] { world.all_to_all(input, std::vector<int64_t>(n, 2), Tensor::zeros({n}, DType::F32),
                                     std::vector<int64_t>(n, 1)); },
              ::testing::ThrowsMessage<Error>(HasSubstr("the sum of its send counts")));
  EXPECT_THAT([&] { world.all_reduce(Tensor::zeros({2}, DType::BF16), ReduceOp::kSum); },
              ::testing::ThrowsMessage<Error>(HasSubstr("f32, f64, i32 and i64")));
  EXPECT_THAT([&] { world.send(input, world.rank()); },
              ::testing::ThrowsMessage<Error>(HasSubstr("pass another rank")));
  EXPECT_THAT([&] { world.batch_send_recv({}, {{input, world.size()}}); },
              ::testing::ThrowsMessage<Error>(HasSubstr("pass another rank")));
  EXPECT_THAT([&] { world.all_gather(input, Tensor::zeros({n + 1}, DType::F32)); },
              ::testing::ThrowsMessage<Error>(HasSubstr("elements in its output")));
  EXPECT_THAT([&] { world.all_gather(input.slice(0, 0, 1), input); },
              ::testing::ThrowsMessage<Error>(HasSubstr("share memory")));
}

}  // namespace
}  // namespace moebench::dist
