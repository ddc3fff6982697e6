#include "moebench/train/pipeline_runner.h"

#include <map>
#include <string>

#include "moebench/core/error.h"

namespace moebench::train {
namespace {

// Removes and returns the tensor kept for `action`; undefined when there is
// no action. `what` says which tensor, for the error when it is missing.
Tensor take(std::map<int, Tensor>& tensors, std::optional<int> action, const char* what) {
  if (!action) return {};
  const auto found = tensors.find(*action);
  if (found == tensors.end())
    throw Error(std::string("run_pipeline_schedule: no ") + what + " for action " + std::to_string(*action) +
                "; the schedule's steps are out of order");
  Tensor tensor = found->second;
  tensors.erase(found);
  return tensor;
}

}  // namespace

void run_pipeline_schedule(const PipelineSchedule& schedule, PipelineStageModel& model,
                           dist::PipelineP2P& p2p) {
  if (p2p.stages() != schedule.stages || p2p.stage() != schedule.stage)
    throw Error("run_pipeline_schedule: schedule for stage " + std::to_string(schedule.stage) +
                " of PP=" + std::to_string(schedule.stages) + " on stage " + std::to_string(p2p.stage()) +
                " of a pp group of " + std::to_string(p2p.stages()) +
                "; build the schedule from the pp group's rank and size");
  // Tensors waiting between an exchange and a pass, by action index: what a
  // pass received, and what it produced for sending.
  std::map<int, Tensor> received, to_send;
  for (const PipelineStep& step : schedule.steps) {
    if (step.run) {
      const int index = *step.run;
      const PipelineAction& action = schedule.actions[size_t(index)];
      const Tensor input = action.recv ? take(received, index, "received tensor") : Tensor();
      const Tensor output = action.pass == PassKind::kForward
                                ? model.forward(action.microbatch, action.model_chunk, input)
                                : model.backward(action.microbatch, action.model_chunk, input);
      if (action.send && !output.defined())
        throw Error("run_pipeline_schedule: " + describe(action) + " returned no tensor to send; only " +
                    "the last virtual stage's forward and the first one's backward may return none");
      if (action.send) to_send[index] = output;
      continue;
    }
    const P2PExchange& e = step.exchange;
    const dist::PipelineP2P::Received got = p2p.communicate(
        take(to_send, e.send_forward, "output to send"), take(to_send, e.send_backward, "gradient to send"),
        e.recv_forward.has_value(), e.recv_backward.has_value());
    if (e.recv_forward) received[*e.recv_forward] = got.forward;
    if (e.recv_backward) received[*e.recv_backward] = got.backward;
  }
}

void run_pipeline_forward_only(int model_chunks, int microbatches, PipelineStageModel& model,
                               dist::PipelineP2P& p2p) {
  const int last = p2p.stages() - 1;
  for (int microbatch = 0; microbatch < microbatches; ++microbatch) {
    for (int chunk = 0; chunk < model_chunks; ++chunk) {
      const bool first_virtual_stage = p2p.stage() == 0 && chunk == 0;
      const bool last_virtual_stage = p2p.stage() == last && chunk == model_chunks - 1;
      const Tensor input = first_virtual_stage ? Tensor() : p2p.recv_forward();
      const Tensor output = model.forward(microbatch, chunk, input);
      if (!last_virtual_stage) p2p.send_forward(output);
    }
  }
}

}  // namespace moebench::train
