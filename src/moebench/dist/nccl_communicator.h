#pragma once
// A Communicator over NCCL, for CUDA tensors of f32, f64, bf16, f16, i32 and
// i64 on this rank's GPU (one GPU per rank).
//
// Streams. Every operation is queued on the stream the stream source returns
// when the operation is called (the engine passes ops::current_stream, so
// communication is ordered with the compute around it) and returns without
// waiting: the result is there for the next work queued on that stream, and
// for the host after it synchronises (to_host does). Only barrier() waits on
// the host. Tensors must stay alive until the queued work is done, as for a
// kernel.
//
// Groups. The world's communicator is made over a CPU communicator of the
// same ranks (`bootstrap`: MPI, or one rank): its rank 0 creates the
// ncclUniqueId and broadcasts it, then every rank joins with
// ncclCommInitRank, keeping bootstrap's rank order. Sub-groups come from
// split(), which is ncclCommSplit (NCCL >= 2.18), collective over this group
// with MPI_Comm_split's meaning, so ParallelState builds the tp, ep, dp, pp,
// ... groups over NCCL exactly as it does over MPI. Errors name a group by its
// path of splits: "world", "world/colour 1", "world/colour 1/colour 0".
//
// What NCCL does not check: a receive whose length differs from the send's
// (MPI reports it; NCCL hangs or leaves the tail unwritten), so the callers'
// agreement on shapes (PipelineP2P, the exchanged all-to-all counts) is what
// keeps transfers matched.
#ifdef MOEBENCH_WITH_CUDA
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <functional>
#include <string>

#include "moebench/dist/communicator.h"

namespace moebench::dist {

// The stream that NCCL's work goes on, asked at each operation.
using CudaStreamSource = std::function<cudaStream_t()>;

class NcclCommunicator final : public Communicator {
 public:
  // Collective over `bootstrap`: an NCCL communicator of bootstrap's ranks,
  // in its order, on `device` (a CUDA device, this rank's GPU).
  NcclCommunicator(Communicator& bootstrap, Device device, CudaStreamSource stream);
  ~NcclCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Device device() const { return device_; }
  // The group's name in errors: "world", then "/colour c" for each split.
  const std::string& label() const { return label_; }

 private:
  // Takes ownership of a communicator made for this object (by split).
  NcclCommunicator(ncclComm_t comm, Device device, CudaStreamSource stream, std::string label);

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

  // The NCCL type of a tensor on this communicator's GPU; Error otherwise.
  ncclDataType_t nccl_type(const char* operation, const Tensor& tensor) const;
  // Throws Error naming the operation, the NCCL call, this group and NCCL's
  // message unless `result` is ncclSuccess.
  void check(ncclResult_t result, const char* operation, const char* call) const;
  // Runs `enqueue` (NCCL calls) between ncclGroupStart and ncclGroupEnd, so
  // its sends and receives proceed together; the group is closed on errors too.
  void grouped(const char* operation, const std::function<void()>& enqueue) const;

  ncclComm_t comm_ = nullptr;
  Device device_;
  CudaStreamSource stream_;
  std::string label_;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace moebench::dist
#endif  // MOEBENCH_WITH_CUDA
