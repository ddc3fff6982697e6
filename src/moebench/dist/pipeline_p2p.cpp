#include "moebench/dist/pipeline_p2p.h"

#include <string>
#include <utility>

#include "moebench/core/error.h"

namespace moebench::dist {

PipelineP2P::PipelineP2P(Communicator& pp_group, std::vector<int64_t> shape, DType dtype, Device device)
    : group_(pp_group), shape_(std::move(shape)), dtype_(dtype), device_(device) {}

PipelineP2P::Received PipelineP2P::communicate(const Tensor& send_forward, const Tensor& send_backward,
                                               bool recv_forward, bool recv_backward) {
  // The order of each list is the matching order between two stages (see
  // the header): forward before backward, on both sides.
  std::vector<PeerTransfer> sends, recvs;
  if (send_forward.defined()) {
    check_sent(send_forward, "forward");
    sends.push_back({send_forward.contiguous(), next_stage()});
  }
  if (send_backward.defined()) {
    check_sent(send_backward, "backward");
    sends.push_back({send_backward.contiguous(), previous_stage()});
  }
  Received received;
  if (recv_forward) {
    received.forward = Tensor::empty(shape_, dtype_, device_);
    recvs.push_back({received.forward, previous_stage()});
  }
  if (recv_backward) {
    received.backward = Tensor::empty(shape_, dtype_, device_);
    recvs.push_back({received.backward, next_stage()});
  }
  group_.batch_send_recv(sends, recvs);
  return received;
}

Tensor PipelineP2P::recv_forward() { return communicate({}, {}, true, false).forward; }

void PipelineP2P::send_forward(const Tensor& output) { communicate(output, {}, false, false); }

Tensor PipelineP2P::recv_backward() { return communicate({}, {}, false, true).backward; }

void PipelineP2P::send_backward(const Tensor& input_grad) { communicate({}, input_grad, false, false); }

Tensor PipelineP2P::send_forward_recv_backward(const Tensor& output) {
  return communicate(output, {}, false, true).backward;
}

Tensor PipelineP2P::send_backward_recv_forward(const Tensor& input_grad) {
  return communicate({}, input_grad, true, false).forward;
}

Tensor PipelineP2P::send_forward_recv_forward(const Tensor& output) {
  return communicate(output, {}, true, false).forward;
}

Tensor PipelineP2P::send_backward_recv_backward(const Tensor& input_grad) {
  return communicate({}, input_grad, false, true).backward;
}

PipelineP2P::Received PipelineP2P::send_forward_backward_recv_forward_backward(const Tensor& output,
                                                                               const Tensor& input_grad) {
  return communicate(output, input_grad, true, true);
}

void PipelineP2P::check_sent(const Tensor& tensor, const char* direction) const {
  // The receiver allocates by the agreed shape, so a mismatch would surface
  // on another rank as a garbled tensor: stop it at the sender.
  if (tensor.shape() == shape_ && tensor.dtype() == dtype_) return;
  std::string expected = std::string(name(dtype_)) + "[";
  for (size_t d = 0; d < shape_.size(); ++d) expected += (d ? ", " : "") + std::to_string(shape_[d]);
  throw Error(std::string("PipelineP2P on stage ") + std::to_string(stage()) + " was given " +
              tensor.describe() + " to send " + direction + "; every tensor between stages is " + expected +
              "], the shape and dtype the PipelineP2P was built with");
}

}  // namespace moebench::dist
