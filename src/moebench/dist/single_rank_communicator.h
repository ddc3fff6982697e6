#pragma once
// The communicator of a group of one rank: a run with one process, or a
// parallel dimension of size 1. Every collective is the identity (outputs are
// copies of inputs), so single-rank runs take the same code paths as
// parallel ones without any transport.
#include "moebench/dist/communicator.h"

namespace moebench::dist {

class SingleRankCommunicator final : public Communicator {
 public:
  SingleRankCommunicator() = default;

  int rank() const override { return 0; }
  int size() const override { return 1; }

 private:
  void all_reduce_impl(const Tensor& tensor, ReduceOp op) override;
  void reduce_scatter_impl(const Tensor& input, const Tensor& output, ReduceOp op) override;
  void all_gather_impl(const Tensor& input, const Tensor& output) override;
  void all_to_all_impl(const Tensor& input, const std::vector<int64_t>& send_counts,
                       const Tensor& output, const std::vector<int64_t>& recv_counts) override;
  void send_impl(const Tensor& tensor, int destination) override;
  void recv_impl(const Tensor& tensor, int source) override;
  void batch_send_recv_impl(const std::vector<PeerTransfer>& sends,
                            const std::vector<PeerTransfer>& recvs) override;
  void broadcast_impl(const Tensor& tensor, int root) override;
  void barrier_impl() override;
  std::unique_ptr<Communicator> split_impl(std::optional<int> color, int key) override;
};

}  // namespace moebench::dist
