#include "moebench/dist/single_rank_communicator.h"

namespace moebench::dist {
namespace {

// Copies the elements of `input` into `output` whatever their shapes: the
// base class has checked that the element counts match.
void copy_elements(const Tensor& input, const Tensor& output) {
  output.view({output.numel()}).copy_from(input.view({input.numel()}));
}

}  // namespace

// The reduction over one rank is the tensor itself.
void SingleRankCommunicator::all_reduce_impl(const Tensor&, ReduceOp) {}

void SingleRankCommunicator::reduce_scatter_impl(const Tensor& input, const Tensor& output,
                                                 ReduceOp) {
  copy_elements(input, output);
}

void SingleRankCommunicator::all_gather_impl(const Tensor& input, const Tensor& output) {
  copy_elements(input, output);
}

void SingleRankCommunicator::all_to_all_impl(const Tensor& input, const std::vector<int64_t>&,
                                             const Tensor& output, const std::vector<int64_t>&) {
  copy_elements(input, output);
}

// Communicator::send, recv and batch_send_recv reject every peer of a
// one-rank group (a rank never sends to itself), so these are never reached.
void SingleRankCommunicator::send_impl(const Tensor&, int) {}
void SingleRankCommunicator::recv_impl(const Tensor&, int) {}
void SingleRankCommunicator::batch_send_recv_impl(const std::vector<PeerTransfer>&,
                                                  const std::vector<PeerTransfer>&) {}

// The root is this rank: its tensor already holds the root's values.
void SingleRankCommunicator::broadcast_impl(const Tensor&, int) {}

void SingleRankCommunicator::barrier_impl() {}

std::unique_ptr<Communicator> SingleRankCommunicator::split_impl(std::optional<int> color, int) {
  if (!color) return nullptr;
  return std::make_unique<SingleRankCommunicator>();
}

}  // namespace moebench::dist
