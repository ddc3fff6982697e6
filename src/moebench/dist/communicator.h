#pragma once
// Communicator: the collectives and point-to-point transfers of one group of
// ranks, independent of the transport (MPI for CPU tensors, NCCL for CUDA
// tensors), so parallel code is written once and tested on CPU ranks.
//
// Every operation is collective over the group unless it says otherwise:
// each rank calls it in the same order with matching arguments. Tensors are
// contiguous and are read and written as flat arrays of elements; an output
// is written through its handle (Tensor shares storage) and must not overlap
// the input. The public functions check the arguments the same way for every
// transport, then hand over to the transport's virtual *_impl.
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "moebench/core/tensor.h"

namespace moebench::dist {

enum class ReduceOp { kSum, kMax };

// One point-to-point transfer of a batch: the tensor sent to, or received
// from, `peer`.
struct PeerTransfer {
  Tensor tensor;
  int peer;
};

// "sum" or "max".
std::string_view name(ReduceOp op);

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  // In place: every rank's tensor becomes the element-wise reduction over
  // the group.
  void all_reduce(const Tensor& tensor, ReduceOp op);
  // input holds size() equal chunks, output one chunk; rank r's output is the
  // reduction over the group of everyone's chunk r.
  void reduce_scatter(const Tensor& input, const Tensor& output, ReduceOp op);
  // output holds size() chunks of input.numel() elements; chunk r is rank r's
  // input.
  void all_gather(const Tensor& input, const Tensor& output);
  // input is split, in order, into size() runs of send_counts[r] elements,
  // run r going to rank r; output receives recv_counts[r] elements from rank
  // r, in rank order. Counts may be zero; a rank's recv_counts[r] must equal
  // rank r's send_counts[rank()] (the caller exchanges counts first, as
  // Megatron's all-to-all dispatcher does).
  void all_to_all(const Tensor& input, const std::vector<int64_t>& send_counts,
                  const Tensor& output, const std::vector<int64_t>& recv_counts);
  // Point to point, between this rank and one other rank of the group: not
  // collective. The receiver's tensor has the sender's dtype and element
  // count. Blocks until the transfer may be considered done by this rank.
  void send(const Tensor& tensor, int destination);
  void recv(const Tensor& tensor, int source);
  // Point to point, several transfers at once, as torch's
  // batch_isend_irecv: posts every send and receive, then waits for all
  // (MPI_Isend/MPI_Irecv and MPI_Waitall; a NCCL group). Not collective.
  // Ranks sending to each other in one call cannot deadlock, which separate
  // blocking send and recv calls can. Transfers between two ranks are
  // matched in the order each side lists them.
  void batch_send_recv(const std::vector<PeerTransfer>& sends, const std::vector<PeerTransfer>& recvs);
  // In place: every rank's tensor becomes root's.
  void broadcast(const Tensor& tensor, int root);
  void barrier();

  // A sub-communicator per colour, as MPI_Comm_split and ncclCommSplit do:
  // ranks passing the same colour form one group, ordered by key (ties by
  // rank here). A rank passing no colour joins no group and gets nullptr.
  // Colours are non-negative.
  std::unique_ptr<Communicator> split(std::optional<int> color, int key);

 protected:
  Communicator() = default;

 private:
  virtual void all_reduce_impl(const Tensor& tensor, ReduceOp op) = 0;
  virtual void reduce_scatter_impl(const Tensor& input, const Tensor& output, ReduceOp op) = 0;
  virtual void all_gather_impl(const Tensor& input, const Tensor& output) = 0;
  virtual void all_to_all_impl(const Tensor& input, const std::vector<int64_t>& send_counts,
                               const Tensor& output, const std::vector<int64_t>& recv_counts) = 0;
  virtual void send_impl(const Tensor& tensor, int destination) = 0;
  virtual void recv_impl(const Tensor& tensor, int source) = 0;
  virtual void batch_send_recv_impl(const std::vector<PeerTransfer>& sends,
                                    const std::vector<PeerTransfer>& recvs) = 0;
  virtual void broadcast_impl(const Tensor& tensor, int root) = 0;
  virtual void barrier_impl() = 0;
  virtual std::unique_ptr<Communicator> split_impl(std::optional<int> color, int key) = 0;

  void check_peer(const char* operation, int peer) const;
};

}  // namespace moebench::dist
