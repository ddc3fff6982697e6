#include "moebench/dist/nccl_communicator.h"

#ifdef MOEBENCH_WITH_CUDA
#include <cstring>
#include <string>
#include <utility>

#include "moebench/core/cuda_check.h"
#include "moebench/core/error.h"

namespace moebench::dist {
namespace {

// The ncclUniqueId crosses the bootstrap communicator as i64 words.
constexpr int64_t kUniqueIdWords = NCCL_UNIQUE_ID_BYTES / sizeof(int64_t);
static_assert(NCCL_UNIQUE_ID_BYTES % sizeof(int64_t) == 0);

[[noreturn]] void throw_nccl_error(ncclResult_t result, ncclComm_t comm, const std::string& where,
                                   const char* call) {
  std::string message = std::string("NcclCommunicator::") + where + " failed in " + call + ": " +
                        ncclGetErrorString(result);
  const char* detail = ncclGetLastError(comm);
  if (detail != nullptr && *detail != '\0') message += " (" + std::string(detail) + ")";
  throw Error(message + "; NCCL_DEBUG=WARN shows NCCL's own report");
}

// Makes `device` current until the end of the scope: NCCL creates a
// communicator on the current device.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    MOEBENCH_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) MOEBENCH_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceScope() { cudaSetDevice(previous_); }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int previous_ = 0;
};

Device checked_device(Device device) {
  if (!device.is_cuda()) {
    throw Error("NcclCommunicator needs a CUDA device, got " + device.str() +
                "; use the MPI communicator for CPU tensors");
  }
  return device;
}

// Rank 0 of `bootstrap` creates the id and broadcasts it; every rank joins.
ncclComm_t join_world(Communicator& bootstrap, Device device) {
  const std::string joining = "NcclCommunicator (joining world as rank " + std::to_string(bootstrap.rank()) +
                              " of " + std::to_string(bootstrap.size()) + " on " + device.str() + ")";
  ncclUniqueId id{};
  if (bootstrap.rank() == 0) {
    const ncclResult_t result = ncclGetUniqueId(&id);
    if (result != ncclSuccess) throw_nccl_error(result, nullptr, joining, "ncclGetUniqueId");
  }
  const Tensor words = Tensor::empty({kUniqueIdWords}, DType::I64);
  std::memcpy(words.data_ptr(), &id, sizeof id);
  bootstrap.broadcast(words, 0);
  std::memcpy(&id, words.data_ptr(), sizeof id);

  const DeviceScope on_device(device.index);
  ncclComm_t comm = nullptr;
  const ncclResult_t result = ncclCommInitRank(&comm, bootstrap.size(), id, bootstrap.rank());
  if (result != ncclSuccess) throw_nccl_error(result, nullptr, joining, "ncclCommInitRank");
  return comm;
}

ncclRedOp_t nccl_op(ReduceOp op) { return op == ReduceOp::kSum ? ncclSum : ncclMax; }

// The address of element `offset` of a contiguous tensor.
char* element_address(const Tensor& tensor, int64_t offset) {
  return static_cast<char*>(tensor.data_ptr()) + offset * int64_t(size_in_bytes(tensor.dtype()));
}

size_t count(const Tensor& tensor) { return size_t(tensor.numel()); }

}  // namespace

NcclCommunicator::NcclCommunicator(Communicator& bootstrap, Device device, CudaStreamSource stream)
    : NcclCommunicator(join_world(bootstrap, checked_device(device)), device, std::move(stream), "world") {}

NcclCommunicator::NcclCommunicator(ncclComm_t comm, Device device, CudaStreamSource stream, std::string label)
    : comm_(comm), device_(device), stream_(std::move(stream)), label_(std::move(label)) {
  check(ncclCommUserRank(comm_, &rank_), "NcclCommunicator", "ncclCommUserRank");
  check(ncclCommCount(comm_, &size_), "NcclCommunicator", "ncclCommCount");
}

NcclCommunicator::~NcclCommunicator() {
  // Waits for this communicator's queued work; a destructor must not throw.
  ncclCommDestroy(comm_);
}

void NcclCommunicator::all_reduce_impl(const Tensor& tensor, ReduceOp op) {
  check(ncclAllReduce(tensor.data_ptr(), tensor.data_ptr(), count(tensor), nccl_type("all_reduce", tensor),
                      nccl_op(op), comm_, stream_()),
        "all_reduce", "ncclAllReduce");
}

void NcclCommunicator::reduce_scatter_impl(const Tensor& input, const Tensor& output, ReduceOp op) {
  check(ncclReduceScatter(input.data_ptr(), output.data_ptr(), count(output), nccl_type("reduce_scatter", input),
                          nccl_op(op), comm_, stream_()),
        "reduce_scatter", "ncclReduceScatter");
}

void NcclCommunicator::all_gather_impl(const Tensor& input, const Tensor& output) {
  check(ncclAllGather(input.data_ptr(), output.data_ptr(), count(input), nccl_type("all_gather", input), comm_,
                      stream_()),
        "all_gather", "ncclAllGather");
}

void NcclCommunicator::all_to_all_impl(const Tensor& input, const std::vector<int64_t>& send_counts,
                                       const Tensor& output, const std::vector<int64_t>& recv_counts) {
  const ncclDataType_t type = nccl_type("all_to_all", input);
  const cudaStream_t stream = stream_();
  grouped("all_to_all", [&] {
    int64_t sent = 0, received = 0;
    for (int peer = 0; peer < size_; ++peer) {
      // An empty run has an empty counterpart on the peer: neither side posts it.
      if (send_counts[peer] > 0) {
        check(ncclSend(element_address(input, sent), size_t(send_counts[peer]), type, peer, comm_, stream),
              "all_to_all", "ncclSend");
      }
      if (recv_counts[peer] > 0) {
        check(ncclRecv(element_address(output, received), size_t(recv_counts[peer]), type, peer, comm_, stream),
              "all_to_all", "ncclRecv");
      }
      sent += send_counts[peer];
      received += recv_counts[peer];
    }
  });
}

void NcclCommunicator::send_impl(const Tensor& tensor, int destination) {
  check(ncclSend(tensor.data_ptr(), count(tensor), nccl_type("send", tensor), destination, comm_, stream_()),
        "send", "ncclSend");
}

void NcclCommunicator::recv_impl(const Tensor& tensor, int source) {
  check(ncclRecv(tensor.data_ptr(), count(tensor), nccl_type("recv", tensor), source, comm_, stream_()), "recv",
        "ncclRecv");
}

void NcclCommunicator::batch_send_recv_impl(const std::vector<PeerTransfer>& sends,
                                            const std::vector<PeerTransfer>& recvs) {
  const cudaStream_t stream = stream_();
  // Within a group NCCL matches the transfers between two ranks in the order
  // each side posts them, which is the order of each list.
  grouped("batch_send_recv", [&] {
    for (const PeerTransfer& recv : recvs) {
      check(ncclRecv(recv.tensor.data_ptr(), count(recv.tensor), nccl_type("batch_send_recv", recv.tensor), recv.peer,
                     comm_, stream),
            "batch_send_recv", "ncclRecv");
    }
    for (const PeerTransfer& send : sends) {
      check(ncclSend(send.tensor.data_ptr(), count(send.tensor), nccl_type("batch_send_recv", send.tensor), send.peer,
                     comm_, stream),
            "batch_send_recv", "ncclSend");
    }
  });
}

void NcclCommunicator::broadcast_impl(const Tensor& tensor, int root) {
  check(ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(), count(tensor), nccl_type("broadcast", tensor), root,
                      comm_, stream_()),
        "broadcast", "ncclBroadcast");
}

void NcclCommunicator::barrier_impl() {
  // As torch's NCCL barrier: an all-reduce of one element, waited for.
  const Tensor token = Tensor::empty({1}, DType::I32, device_);
  const cudaStream_t stream = stream_();
  MOEBENCH_CUDA_CHECK(cudaMemsetAsync(token.data_ptr(), 0, sizeof(int32_t), stream));
  check(ncclAllReduce(token.data_ptr(), token.data_ptr(), 1, ncclInt32, ncclSum, comm_, stream), "barrier",
        "ncclAllReduce");
  MOEBENCH_CUDA_CHECK(cudaStreamSynchronize(stream));
}

std::unique_ptr<Communicator> NcclCommunicator::split_impl(std::optional<int> color, int key) {
  const DeviceScope on_device(device_.index);
  ncclComm_t group = nullptr;
  check(ncclCommSplit(comm_, color.value_or(NCCL_SPLIT_NOCOLOR), key, &group, nullptr), "split", "ncclCommSplit");
  if (group == nullptr) return nullptr;
  return std::unique_ptr<Communicator>(
      new NcclCommunicator(group, device_, stream_, label_ + "/colour " + std::to_string(*color)));
}

ncclDataType_t NcclCommunicator::nccl_type(const char* operation, const Tensor& tensor) const {
  if (tensor.device() != device_) {
    throw Error(std::string("NcclCommunicator::") + operation + " moves tensors on " + device_.str() +
                " (this rank's GPU), got " + tensor.describe() +
                "; use the MPI communicator for CPU tensors and move GPU tensors with to_device");
  }
  switch (tensor.dtype()) {
    case DType::F32:
      return ncclFloat32;
    case DType::F64:
      return ncclFloat64;
    case DType::BF16:
      return ncclBfloat16;
    case DType::F16:
      return ncclFloat16;
    case DType::I32:
      return ncclInt32;
    case DType::I64:
      return ncclInt64;
    default:
      throw Error(std::string("NcclCommunicator::") + operation + " got " + tensor.describe() +
                  "; it moves f32, f64, bf16, f16, i32 and i64 tensors (convert first)");
  }
}

void NcclCommunicator::check(ncclResult_t result, const char* operation, const char* call) const {
  if (result == ncclSuccess) return;
  throw_nccl_error(result, comm_,
                   std::string(operation) + " on rank " + std::to_string(rank_) + " of group " + label_ + " (" +
                       std::to_string(size_) + " ranks, " + device_.str() + ")",
                   call);
}

void NcclCommunicator::grouped(const char* operation, const std::function<void()>& enqueue) const {
  check(ncclGroupStart(), operation, "ncclGroupStart");
  try {
    enqueue();
  } catch (...) {
    ncclGroupEnd();
    throw;
  }
  check(ncclGroupEnd(), operation, "ncclGroupEnd");
}

}  // namespace moebench::dist
#endif  // MOEBENCH_WITH_CUDA
