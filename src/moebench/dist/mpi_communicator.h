#pragma once
// A Communicator over an MPI communicator, for CPU tensors of f32, f64, i32
// and i64. MPI must be initialised (see bootstrap.h) for as long as any
// MpiCommunicator lives. Errors from MPI become moebench::Error instead of
// aborting the job, so a wrong argument reads as a message.
#include <mpi.h>

#include "moebench/dist/communicator.h"

namespace moebench::dist {

class MpiCommunicator final : public Communicator {
 public:
  // Duplicates `comm`, so this object's traffic never mixes with the
  // caller's and it owns (and frees) what it uses.
  explicit MpiCommunicator(MPI_Comm comm);
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  MPI_Comm comm() const { return comm_; }

 private:
  struct Owned {};
  // Takes ownership of a communicator made for this object (by split).
  MpiCommunicator(MPI_Comm comm, Owned);

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

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace moebench::dist
