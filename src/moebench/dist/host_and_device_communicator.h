#pragma once
// The communicator of one group for a model on a GPU, whose collectives carry
// both device tensors (gradients, activations) and host tensors (losses,
// token counts, norms read back to the host): each operation goes to the
// transport of its tensors' device, NCCL for this rank's GPU and MPI for the
// host, over the same ranks in the same order. So the trainer, the optimizers
// and the model call one communicator per group whatever their tensors hold,
// as they do on CPU ranks.
//
// Ordering. Device work is queued on the stream (see nccl_communicator.h) and
// host work runs at once; a host tensor computed from device data has been
// synchronised when it was read back (to_host), so the two never race. The
// ranks call both transports in the same order, which is all each needs.
//
// split() splits both transports in step (collective over each), so every
// group of ParallelState has its NCCL and its MPI half. barrier() waits on
// both: every rank has arrived and its queued device work is done.
#include <memory>

#include "moebench/dist/communicator.h"

namespace moebench::dist {

class HostAndDeviceCommunicator final : public Communicator {
 public:
  // `device` moves the tensors of this rank's GPU, `host` the CPU tensors;
  // both over the same ranks, in the same order (Error otherwise).
  HostAndDeviceCommunicator(std::unique_ptr<Communicator> device, std::unique_ptr<Communicator> host);

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  Communicator& device_transport() const { return *device_; }
  Communicator& host_transport() const { return *host_; }

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

  // The transport of `tensor`'s device: host for CPU tensors, device otherwise.
  Communicator& transport_for(const Tensor& tensor) const;

  std::unique_ptr<Communicator> device_;
  std::unique_ptr<Communicator> host_;
};

}  // namespace moebench::dist
