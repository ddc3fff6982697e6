#include "moebench/dist/mpi_communicator.h"

#include <climits>
#include <vector>
#include <string>

#include "moebench/core/error.h"

namespace moebench::dist {
namespace {

// One tag for all point-to-point traffic: MPI keeps messages between two
// ranks of one communicator in order, which is all the pipeline needs.
constexpr int kPointToPointTag = 0;

void check_mpi(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char message[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, message, &length);
  throw Error(std::string(call) + " failed: " + std::string(message, size_t(length)));
}

MPI_Datatype mpi_datatype(const char* operation, const Tensor& tensor) {
  if (!tensor.device().is_cpu()) {
    throw Error(std::string("MpiCommunicator::") + operation + " moves CPU tensors, got " +
                tensor.describe() + "; use the NCCL communicator for CUDA tensors");
  }
  switch (tensor.dtype()) {
    case DType::F32:
      return MPI_FLOAT;
    case DType::F64:
      return MPI_DOUBLE;
    case DType::I32:
      return MPI_INT32_T;
    case DType::I64:
      return MPI_INT64_T;
    default:
      throw Error(std::string("MpiCommunicator::") + operation + " got " + tensor.describe() +
                  "; it moves f32, f64, i32 and i64 tensors (convert with to())");
  }
}

// MPI 3 counts and displacements are ints.
int mpi_count(const char* operation, int64_t count) {
  if (count > INT_MAX) {
    throw Error(std::string("MpiCommunicator::") + operation + " got " + std::to_string(count) +
                " elements, more than MPI's int count allows; split the transfer");
  }
  return int(count);
}

MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::kSum ? MPI_SUM : MPI_MAX; }

// MPI_Alltoallv's per-rank counts and their exclusive prefix sums.
struct CountsAndOffsets {
  std::vector<int> counts;
  std::vector<int> offsets;
};

CountsAndOffsets counts_and_offsets(const std::vector<int64_t>& counts) {
  CountsAndOffsets result;
  int64_t offset = 0;
  for (int64_t count : counts) {
    result.counts.push_back(mpi_count("all_to_all", count));
    result.offsets.push_back(mpi_count("all_to_all", offset));
    offset += count;
  }
  return result;
}

MPI_Comm duplicate(MPI_Comm comm) {
  MPI_Comm copy = MPI_COMM_NULL;
  check_mpi(MPI_Comm_dup(comm, &copy), "MPI_Comm_dup");
  return copy;
}

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm) : MpiCommunicator(duplicate(comm), Owned{}) {}

MpiCommunicator::MpiCommunicator(MPI_Comm comm, Owned) : comm_(comm) {
  check_mpi(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  check_mpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
}

MpiCommunicator::~MpiCommunicator() {
  // After MPI_Finalize there is nothing left to free, and calling MPI would
  // be an error; a destructor must not throw either way.
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Comm_free(&comm_);
}

void MpiCommunicator::all_reduce_impl(const Tensor& tensor, ReduceOp op) {
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, tensor.data_ptr(), mpi_count("all_reduce", tensor.numel()),
                          mpi_datatype("all_reduce", tensor), mpi_op(op), comm_),
            "MPI_Allreduce");
}

void MpiCommunicator::reduce_scatter_impl(const Tensor& input, const Tensor& output,
                                          ReduceOp op) {
  check_mpi(MPI_Reduce_scatter_block(input.data_ptr(), output.data_ptr(),
                                     mpi_count("reduce_scatter", output.numel()),
                                     mpi_datatype("reduce_scatter", input), mpi_op(op), comm_),
            "MPI_Reduce_scatter_block");
}

void MpiCommunicator::all_gather_impl(const Tensor& input, const Tensor& output) {
  const MPI_Datatype type = mpi_datatype("all_gather", input);
  const int count = mpi_count("all_gather", input.numel());
  check_mpi(MPI_Allgather(input.data_ptr(), count, type, output.data_ptr(), count, type, comm_),
            "MPI_Allgather");
}

void MpiCommunicator::all_to_all_impl(const Tensor& input, const std::vector<int64_t>& send_counts,
                                      const Tensor& output,
                                      const std::vector<int64_t>& recv_counts) {
  const MPI_Datatype type = mpi_datatype("all_to_all", input);
  const CountsAndOffsets sends = counts_and_offsets(send_counts);
  const CountsAndOffsets receives = counts_and_offsets(recv_counts);
  check_mpi(MPI_Alltoallv(input.data_ptr(), sends.counts.data(), sends.offsets.data(), type,
                          output.data_ptr(), receives.counts.data(), receives.offsets.data(), type,
                          comm_),
            "MPI_Alltoallv");
}

void MpiCommunicator::send_impl(const Tensor& tensor, int destination) {
  check_mpi(MPI_Send(tensor.data_ptr(), mpi_count("send", tensor.numel()),
                     mpi_datatype("send", tensor), destination, kPointToPointTag, comm_),
            "MPI_Send");
}

void MpiCommunicator::recv_impl(const Tensor& tensor, int source) {
  const MPI_Datatype type = mpi_datatype("recv", tensor);
  MPI_Status status;
  check_mpi(MPI_Recv(tensor.data_ptr(), mpi_count("recv", tensor.numel()), type, source,
                     kPointToPointTag, comm_, &status),
            "MPI_Recv");
  int received = 0;
  check_mpi(MPI_Get_count(&status, type, &received), "MPI_Get_count");
  if (received != tensor.numel()) {
    throw Error("MpiCommunicator::recv into " + tensor.describe() + " got " +
                std::to_string(received) + " elements from rank " + std::to_string(source) +
                "; sender and receiver must agree on the element count");
  }
}

void MpiCommunicator::batch_send_recv_impl(const std::vector<PeerTransfer>& sends,
                                           const std::vector<PeerTransfer>& recvs) {
  // Receives are posted first so arriving messages land in place rather
  // than in MPI's unexpected-message buffer.
  std::vector<MPI_Request> requests(recvs.size() + sends.size(), MPI_REQUEST_NULL);
  for (size_t i = 0; i < recvs.size(); ++i) {
    const Tensor& tensor = recvs[i].tensor;
    check_mpi(MPI_Irecv(tensor.data_ptr(), mpi_count("batch_send_recv", tensor.numel()),
                        mpi_datatype("batch_send_recv", tensor), recvs[i].peer, kPointToPointTag, comm_,
                        &requests[i]),
              "MPI_Irecv");
  }
  for (size_t i = 0; i < sends.size(); ++i) {
    const Tensor& tensor = sends[i].tensor;
    check_mpi(MPI_Isend(tensor.data_ptr(), mpi_count("batch_send_recv", tensor.numel()),
                        mpi_datatype("batch_send_recv", tensor), sends[i].peer, kPointToPointTag, comm_,
                        &requests[recvs.size() + i]),
              "MPI_Isend");
  }
  std::vector<MPI_Status> statuses(requests.size());
  check_mpi(MPI_Waitall(int(requests.size()), requests.data(), statuses.data()), "MPI_Waitall");
  for (size_t i = 0; i < recvs.size(); ++i) {
    int received = 0;
    check_mpi(MPI_Get_count(&statuses[i], mpi_datatype("batch_send_recv", recvs[i].tensor), &received),
              "MPI_Get_count");
    if (received != recvs[i].tensor.numel()) {
      throw Error("MpiCommunicator::batch_send_recv into " + recvs[i].tensor.describe() + " got " +
                  std::to_string(received) + " elements from rank " + std::to_string(recvs[i].peer) +
                  "; sender and receiver must agree on the element count");
    }
  }
}

void MpiCommunicator::broadcast_impl(const Tensor& tensor, int root) {
  check_mpi(MPI_Bcast(tensor.data_ptr(), mpi_count("broadcast", tensor.numel()),
                      mpi_datatype("broadcast", tensor), root, comm_),
            "MPI_Bcast");
}

void MpiCommunicator::barrier_impl() { check_mpi(MPI_Barrier(comm_), "MPI_Barrier"); }

std::unique_ptr<Communicator> MpiCommunicator::split_impl(std::optional<int> color, int key) {
  MPI_Comm group = MPI_COMM_NULL;
  check_mpi(MPI_Comm_split(comm_, color.value_or(MPI_UNDEFINED), key, &group), "MPI_Comm_split");
  if (group == MPI_COMM_NULL) return nullptr;
  return std::unique_ptr<Communicator>(new MpiCommunicator(group, Owned{}));
}

}  // namespace moebench::dist
