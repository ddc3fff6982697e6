#pragma once
// PipelineP2P: the point-to-point transfers between neighbouring pipeline
// stages, named as Megatron-Core's p2p_communication names them, over the pp
// group's communicator (whose rank is the stage). Every tensor that crosses
// a stage boundary has one shape and dtype (Megatron's tensor_shape and
// pipeline_dtype: [seq, micro batch, hidden]); gradients have the same.
//
// Stages form a ring: the next stage of the last is stage 0 and the previous
// stage of stage 0 is the last, which the interleaved schedule uses to pass
// a microbatch from the last stage's chunk c to stage 0's chunk c + 1.
//
// Deadlock freedom. Each call posts all of its sends and receives at once
// and waits for all of them (Communicator::batch_send_recv, as Megatron's
// batch_isend_irecv), so two neighbours that send to each other in the same
// call, or in calls that overlap, both make progress; separate blocking
// calls would hang, since a send may wait until its receiver is ready (MPI
// with large messages, NCCL always). Which transfers go together is the
// schedule's business (train/pipeline_schedule.h). Between two stages,
// transfers match in the order they are posted: sends forward then backward,
// receives forward then backward. With PP = 2 the next and previous stage
// are the same rank, and this fixed order is what keeps an activation from
// landing in a gradient's buffer.
#include <cstdint>
#include <vector>

#include "moebench/core/tensor.h"
#include "moebench/dist/communicator.h"

namespace moebench::dist {

class PipelineP2P {
 public:
  // pp_group ranks the stages; `shape`, `dtype` and `device` describe every
  // tensor that crosses a stage boundary.
  PipelineP2P(Communicator& pp_group, std::vector<int64_t> shape, DType dtype, Device device = Device::cpu());

  int stage() const { return group_.rank(); }
  int stages() const { return group_.size(); }
  int next_stage() const { return (stage() + 1) % stages(); }
  int previous_stage() const { return (stage() + stages() - 1) % stages(); }

  // What a call received; undefined where nothing was asked for.
  struct Received {
    Tensor forward;   // an activation, from the previous stage
    Tensor backward;  // a gradient, from the next stage
  };

  // Megatron's _communicate: sends `send_forward` to the next stage and
  // `send_backward` to the previous (an undefined tensor sends nothing),
  // receives from the previous stage if `recv_forward` and from the next if
  // `recv_backward`, all at once. Every other call is a case of this one.
  Received communicate(const Tensor& send_forward, const Tensor& send_backward, bool recv_forward,
                       bool recv_backward);

  Tensor recv_forward();
  void send_forward(const Tensor& output);
  Tensor recv_backward();
  void send_backward(const Tensor& input_grad);
  // 1F1B's steady state: after a forward, before a backward, and back.
  Tensor send_forward_recv_backward(const Tensor& output);
  Tensor send_backward_recv_forward(const Tensor& input_grad);
  // The interleaved schedule's warm-up and cool-down.
  Tensor send_forward_recv_forward(const Tensor& output);
  Tensor send_backward_recv_backward(const Tensor& input_grad);
  // The interleaved schedule's steady state.
  Received send_forward_backward_recv_forward_backward(const Tensor& output, const Tensor& input_grad);

 private:
  void check_sent(const Tensor& tensor, const char* direction) const;

  Communicator& group_;
  std::vector<int64_t> shape_;
  DType dtype_;
  Device device_;
};

}  // namespace moebench::dist
