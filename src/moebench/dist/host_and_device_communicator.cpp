#include "moebench/dist/host_and_device_communicator.h"

#include <string>
#include <utility>

#include "moebench/core/error.h"

namespace moebench::dist {

HostAndDeviceCommunicator::HostAndDeviceCommunicator(std::unique_ptr<Communicator> device,
                                                     std::unique_ptr<Communicator> host)
    : device_(std::move(device)), host_(std::move(host)) {
  if (!device_ || !host_)
    throw Error("HostAndDeviceCommunicator needs a device and a host transport; pass both communicators");
  if (device_->rank() != host_->rank() || device_->size() != host_->size())
    throw Error("HostAndDeviceCommunicator got a device transport at rank " + std::to_string(device_->rank()) +
                " of " + std::to_string(device_->size()) + " and a host transport at rank " +
                std::to_string(host_->rank()) + " of " + std::to_string(host_->size()) +
                "; build both over the same ranks in the same order");
}

Communicator& HostAndDeviceCommunicator::transport_for(const Tensor& tensor) const {
  return tensor.device().is_cpu() ? *host_ : *device_;
}

void HostAndDeviceCommunicator::all_reduce_impl(const Tensor& tensor, ReduceOp op) {
  transport_for(tensor).all_reduce(tensor, op);
}

// The base class has checked that input and output share one device.
void HostAndDeviceCommunicator::reduce_scatter_impl(const Tensor& input, const Tensor& output, ReduceOp op) {
  transport_for(input).reduce_scatter(input, output, op);
}

void HostAndDeviceCommunicator::all_gather_impl(const Tensor& input, const Tensor& output) {
  transport_for(input).all_gather(input, output);
}

void HostAndDeviceCommunicator::all_to_all_impl(const Tensor& input, const std::vector<int64_t>& send_counts,
                                                const Tensor& output, const std::vector<int64_t>& recv_counts) {
  transport_for(input).all_to_all(input, send_counts, output, recv_counts);
}

void HostAndDeviceCommunicator::send_impl(const Tensor& tensor, int destination) {
  transport_for(tensor).send(tensor, destination);
}

void HostAndDeviceCommunicator::recv_impl(const Tensor& tensor, int source) {
  transport_for(tensor).recv(tensor, source);
}

// One batch posts its transfers together on one transport: they must share a device.
void HostAndDeviceCommunicator::batch_send_recv_impl(const std::vector<PeerTransfer>& sends,
                                                     const std::vector<PeerTransfer>& recvs) {
  const Tensor& first = sends.empty() ? recvs.front().tensor : sends.front().tensor;
  for (const std::vector<PeerTransfer>* transfers : {&sends, &recvs})
    for (const PeerTransfer& transfer : *transfers)
      if (transfer.tensor.device() != first.device())
        throw Error("HostAndDeviceCommunicator::batch_send_recv got " + first.describe() + " and " +
                    transfer.tensor.describe() +
                    " in one batch; a batch moves tensors of one device: split it into one batch per device");
  transport_for(first).batch_send_recv(sends, recvs);
}

void HostAndDeviceCommunicator::broadcast_impl(const Tensor& tensor, int root) {
  transport_for(tensor).broadcast(tensor, root);
}

void HostAndDeviceCommunicator::barrier_impl() {
  device_->barrier();
  host_->barrier();
}

std::unique_ptr<Communicator> HostAndDeviceCommunicator::split_impl(std::optional<int> color, int key) {
  std::unique_ptr<Communicator> device = device_->split(color, key);
  std::unique_ptr<Communicator> host = host_->split(color, key);
  if (!device && !host) return nullptr;
  return std::make_unique<HostAndDeviceCommunicator>(std::move(device), std::move(host));
}

}  // namespace moebench::dist
