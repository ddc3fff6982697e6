#include "moebench/dist/communicator.h"

#include <numeric>
#include <string>

#include "moebench/core/error.h"

namespace moebench::dist {
namespace {

void require_contiguous(const char* operation, const char* role, const Tensor& tensor) {
  if (!tensor.defined()) {
    throw Error(std::string("Communicator::") + operation + " got an undefined " + role +
                " tensor; allocate it first");
  }
  if (!tensor.is_contiguous()) {
    throw Error(std::string("Communicator::") + operation + " needs a contiguous " + role +
                ", got " + tensor.describe() + " with strides " + format_dims(tensor.strides()) +
                "; pass tensor.contiguous()");
  }
}

// Input and output of one collective: both contiguous, same dtype and device,
// no shared bytes (the transports read the input while writing the output).
void require_pair(const char* operation, const Tensor& input, const Tensor& output) {
  require_contiguous(operation, "input", input);
  require_contiguous(operation, "output", output);
  if (input.dtype() != output.dtype() || input.device() != output.device()) {
    throw Error(std::string("Communicator::") + operation + " got input " + input.describe() +
                " and output " + output.describe() + "; they need the same dtype and device");
  }
  const auto* input_begin = static_cast<const char*>(input.data_ptr());
  const auto* output_begin = static_cast<const char*>(output.data_ptr());
  const bool overlap = input.storage() == output.storage() &&
                       input_begin < output_begin + output.nbytes() &&
                       output_begin < input_begin + input.nbytes();
  if (overlap && input.numel() > 0 && output.numel() > 0) {
    throw Error(std::string("Communicator::") + operation +
                " got an input and output that share memory; pass separate tensors");
  }
}

void require_numel(const char* operation, const char* role, const Tensor& tensor,
                   int64_t expected, const std::string& why) {
  if (tensor.numel() != expected) {
    throw Error(std::string("Communicator::") + operation + " needs " + std::to_string(expected) +
                " elements in its " + role + " (" + why + "), got " + tensor.describe());
  }
}

// The per-rank element counts of all_to_all's input or output.
void require_counts(const char* counts_name, const char* role, const std::vector<int64_t>& counts,
                    int group_size, const Tensor& tensor) {
  if (int64_t(counts.size()) != group_size) {
    throw Error(std::string("Communicator::all_to_all got ") + std::to_string(counts.size()) +
                " " + counts_name + " for a group of " + std::to_string(group_size) +
                " ranks; pass one count per rank");
  }
  for (int64_t count : counts) {
    if (count < 0) {
      throw Error(std::string("Communicator::all_to_all got a negative entry in its ") +
                  counts_name + " (" + std::to_string(count) + "); counts are element counts >= 0");
    }
  }
  require_numel("all_to_all", role, tensor,
                std::accumulate(counts.begin(), counts.end(), int64_t{0}),
                std::string("the sum of its ") + counts_name);
}

}  // namespace

std::string_view name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kMax:
      return "max";
  }
  throw Error("unknown ReduceOp " + std::to_string(int(op)));
}

void Communicator::all_reduce(const Tensor& tensor, ReduceOp op) {
  require_contiguous("all_reduce", "tensor", tensor);
  all_reduce_impl(tensor, op);
}

void Communicator::reduce_scatter(const Tensor& input, const Tensor& output, ReduceOp op) {
  require_pair("reduce_scatter", input, output);
  require_numel("reduce_scatter", "input", input, output.numel() * size(),
                "one output-sized chunk per rank");
  reduce_scatter_impl(input, output, op);
}

void Communicator::all_gather(const Tensor& input, const Tensor& output) {
  require_pair("all_gather", input, output);
  require_numel("all_gather", "output", output, input.numel() * size(),
                "one input-sized chunk per rank");
  all_gather_impl(input, output);
}

void Communicator::all_to_all(const Tensor& input, const std::vector<int64_t>& send_counts,
                              const Tensor& output, const std::vector<int64_t>& recv_counts) {
  require_pair("all_to_all", input, output);
  require_counts("send counts", "input", send_counts, size(), input);
  require_counts("recv counts", "output", recv_counts, size(), output);
  all_to_all_impl(input, send_counts, output, recv_counts);
}

void Communicator::send(const Tensor& tensor, int destination) {
  require_contiguous("send", "tensor", tensor);
  check_peer("send", destination);
  send_impl(tensor, destination);
}

void Communicator::recv(const Tensor& tensor, int source) {
  require_contiguous("recv", "tensor", tensor);
  check_peer("recv", source);
  recv_impl(tensor, source);
}

void Communicator::batch_send_recv(const std::vector<PeerTransfer>& sends,
                                   const std::vector<PeerTransfer>& recvs) {
  for (const PeerTransfer& send : sends) {
    require_contiguous("batch_send_recv", "send tensor", send.tensor);
    check_peer("batch_send_recv", send.peer);
  }
  for (const PeerTransfer& recv : recvs) {
    require_contiguous("batch_send_recv", "recv tensor", recv.tensor);
    check_peer("batch_send_recv", recv.peer);
  }
  if (sends.empty() && recvs.empty()) return;
  batch_send_recv_impl(sends, recvs);
}

void Communicator::broadcast(const Tensor& tensor, int root) {
  require_contiguous("broadcast", "tensor", tensor);
  if (root < 0 || root >= size()) {
    throw Error("Communicator::broadcast got root " + std::to_string(root) + " in a group of " +
                std::to_string(size()) + " ranks; pass a rank of the group");
  }
  broadcast_impl(tensor, root);
}

void Communicator::barrier() { barrier_impl(); }

std::unique_ptr<Communicator> Communicator::split(std::optional<int> color, int key) {
  if (color && *color < 0) {
    throw Error("Communicator::split got colour " + std::to_string(*color) +
                "; colours are >= 0 (pass no colour to join no group)");
  }
  return split_impl(color, key);
}

void Communicator::check_peer(const char* operation, int peer) const {
  if (peer < 0 || peer >= size() || peer == rank()) {
    throw Error(std::string("Communicator::") + operation + " on rank " + std::to_string(rank()) +
                " of " + std::to_string(size()) + " got peer " + std::to_string(peer) +
                "; pass another rank of the group");
  }
}

}  // namespace moebench::dist
