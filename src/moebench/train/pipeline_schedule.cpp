#include "moebench/train/pipeline_schedule.h"

#include <algorithm>

#include "moebench/core/error.h"

namespace moebench::train {
namespace {

using std::to_string;

void check_sizes(int stages, int model_chunks, int microbatches, int stage) {
  if (stages < 1 || model_chunks < 1 || microbatches < 1)
    throw Error("pipeline schedule needs PP, VPP and the number of microbatches >= 1, got PP=" +
                to_string(stages) + ", VPP=" + to_string(model_chunks) + ", M=" + to_string(microbatches));
  if (stage < 0 || stage >= stages)
    throw Error("pipeline schedule for stage " + to_string(stage) + " of PP=" + to_string(stages) +
                "; pass a stage in [0, PP)");
  if (model_chunks > 1 && stages == 1)
    throw Error("VPP=" + to_string(model_chunks) + " needs PP > 1: the interleaved schedule " +
                "interleaves model chunks across pipeline stages");
  if (model_chunks > 1 && microbatches % stages != 0)
    throw Error("the interleaved schedule (VPP=" + to_string(model_chunks) + ") needs the number of " +
                "microbatches, " + to_string(microbatches) + ", to be a multiple of PP=" + to_string(stages) +
                "; change GBS, MBS or the data-parallel size");
}

// Builds one rank's actions; the transfers follow from where each pass sits
// among the virtual stages.
class ActionBuilder {
 public:
  ActionBuilder(int stages, int model_chunks, int stage)
      : stages_(stages), model_chunks_(model_chunks), stage_(stage) {}

  PipelineAction forward(int microbatch, int chunk) const {
    PipelineAction action{PassKind::kForward, microbatch, chunk, std::nullopt, std::nullopt};
    if (!is_first_virtual_stage(chunk)) action.recv = P2PTransfer{P2PKind::kRecvForward, previous_stage()};
    if (!is_last_virtual_stage(chunk)) action.send = P2PTransfer{P2PKind::kSendForward, next_stage()};
    return action;
  }

  PipelineAction backward(int microbatch, int chunk) const {
    PipelineAction action{PassKind::kBackward, microbatch, chunk, std::nullopt, std::nullopt};
    if (!is_last_virtual_stage(chunk)) action.recv = P2PTransfer{P2PKind::kRecvBackward, next_stage()};
    if (!is_first_virtual_stage(chunk)) action.send = P2PTransfer{P2PKind::kSendBackward, previous_stage()};
    return action;
  }

 private:
  bool is_first_virtual_stage(int chunk) const { return stage_ == 0 && chunk == 0; }
  bool is_last_virtual_stage(int chunk) const { return stage_ == stages_ - 1 && chunk == model_chunks_ - 1; }
  // The stages form a ring: the last stage's chunk c feeds stage 0's chunk c + 1.
  int next_stage() const { return (stage_ + 1) % stages_; }
  int previous_stage() const { return (stage_ + stages_ - 1) % stages_; }

  int stages_;
  int model_chunks_;
  int stage_;
};

// Every schedule lays its passes out the same way: `warmup` forwards, then
// (forward, backward) pairs, then the remaining backwards. forward_at(k) and
// backward_at(k) give the k-th pass of each kind.
class PassLayout {
 public:
  PassLayout(int passes, int warmup) : passes_(passes), warmup_(warmup) {}

  int passes() const { return passes_; }
  int warmup() const { return warmup_; }
  int steady() const { return passes_ - warmup_; }
  // Where the k-th forward and the k-th backward sit among the actions.
  int forward_index(int k) const { return k < warmup_ ? k : warmup_ + 2 * (k - warmup_); }
  int backward_index(int k) const { return k < steady() ? warmup_ + 2 * k + 1 : passes_ + k; }

  template <typename ForwardAt, typename BackwardAt>
  std::vector<PipelineAction> actions(ForwardAt forward_at, BackwardAt backward_at) const {
    std::vector<PipelineAction> actions;
    actions.reserve(2 * size_t(passes_));
    for (int k = 0; k < warmup_; ++k) actions.push_back(forward_at(k));
    for (int k = 0; k < steady(); ++k) {
      actions.push_back(forward_at(warmup_ + k));
      actions.push_back(backward_at(k));
    }
    for (int k = steady(); k < passes_; ++k) actions.push_back(backward_at(k));
    return actions;
  }

 private:
  int passes_;
  int warmup_;
};

// Appends steps, leaving out of each exchange the transfers its actions do
// not have (the first and last virtual stages), and empty exchanges.
class StepWriter {
 public:
  StepWriter(PipelineSchedule& schedule, const PassLayout& layout) : schedule_(schedule), layout_(layout) {}

  // Indices of the k-th forward and backward; nullopt past the last one.
  std::optional<int> forward(int k) const {
    return k < layout_.passes() ? std::optional(layout_.forward_index(k)) : std::nullopt;
  }
  std::optional<int> backward(int k) const {
    return k < layout_.passes() ? std::optional(layout_.backward_index(k)) : std::nullopt;
  }

  void run(std::optional<int> action) { schedule_.steps.push_back({action.value(), {}}); }

  void exchange(P2PExchange e) {
    const auto keep_if = [&](std::optional<int>& action, bool (*has)(const PipelineAction&)) {
      if (action && !has(schedule_.actions[*action])) action.reset();
    };
    keep_if(e.send_forward, [](const PipelineAction& a) { return a.send.has_value(); });
    keep_if(e.send_backward, [](const PipelineAction& a) { return a.send.has_value(); });
    keep_if(e.recv_forward, [](const PipelineAction& a) { return a.recv.has_value(); });
    keep_if(e.recv_backward, [](const PipelineAction& a) { return a.recv.has_value(); });
    if (e.send_forward || e.send_backward || e.recv_forward || e.recv_backward)
      schedule_.steps.push_back({std::nullopt, e});
  }

 private:
  PipelineSchedule& schedule_;
  const PassLayout& layout_;
};

// forward_backward_pipelining_without_interleaving (and, with no transfers
// at all, forward_backward_no_pipelining): every warm-up forward receives,
// runs and sends on its own; a steady forward's send goes with its
// backward's receive, and that backward's send with the next forward's
// receive; every cool-down backward receives, runs and sends on its own.
void write_one_forward_one_backward_steps(PipelineSchedule& schedule, const PassLayout& layout) {
  StepWriter w(schedule, layout);
  for (int k = 0; k < layout.warmup(); ++k) {
    w.exchange({.recv_forward = w.forward(k)});
    w.run(w.forward(k));
    w.exchange({.send_forward = w.forward(k)});
  }
  if (layout.steady() > 0) w.exchange({.recv_forward = w.forward(layout.warmup())});
  for (int i = 0; i < layout.steady(); ++i) {
    const int k = layout.warmup() + i;
    w.run(w.forward(k));
    w.exchange({.send_forward = w.forward(k), .recv_backward = w.backward(i)});
    w.run(w.backward(i));
    const bool last = i == layout.steady() - 1;
    w.exchange({.send_backward = w.backward(i), .recv_forward = last ? std::nullopt : w.forward(k + 1)});
  }
  for (int k = layout.steady(); k < layout.passes(); ++k) {
    w.exchange({.recv_backward = w.backward(k)});
    w.run(w.backward(k));
    w.exchange({.send_backward = w.backward(k)});
  }
}

// forward_backward_pipelining_with_interleaving: one exchange after each
// warm-up forward (its send, the next forward's receive, and after the last
// one the first backward's receive), one after each steady forward-backward
// pair (all four transfers) and one after each cool-down backward (its
// send, the next backward's receive). With M = PP Megatron runs every
// forward first and receives the first backward's gradient on its own.
void write_interleaved_steps(PipelineSchedule& schedule, const PassLayout& layout) {
  StepWriter w(schedule, layout);
  const bool all_warmup = schedule.microbatches == schedule.stages;
  w.exchange({.recv_forward = w.forward(0)});
  for (int k = 0; k < layout.warmup(); ++k) {
    w.run(w.forward(k));
    const bool last = k == layout.warmup() - 1;
    w.exchange({.send_forward = w.forward(k),
                .recv_forward = w.forward(k + 1),
                .recv_backward = last && !all_warmup ? w.backward(0) : std::nullopt});
  }
  for (int i = 0; i < layout.steady(); ++i) {
    const int k = layout.warmup() + i;
    w.run(w.forward(k));
    w.run(w.backward(i));
    const bool last = i == layout.steady() - 1;
    w.exchange({.send_forward = w.forward(k),
                .send_backward = w.backward(i),
                .recv_forward = last ? std::nullopt : w.forward(k + 1),
                .recv_backward = w.backward(i + 1)});
  }
  if (all_warmup) w.exchange({.recv_backward = w.backward(0)});
  for (int k = layout.steady(); k < layout.passes(); ++k) {
    w.run(w.backward(k));
    w.exchange({.send_backward = w.backward(k), .recv_backward = w.backward(k + 1)});
  }
}

std::string pass_letter(PassKind pass) { return pass == PassKind::kForward ? "F" : "B"; }

}  // namespace

std::string name(P2PKind kind) {
  switch (kind) {
    case P2PKind::kRecvForward:
      return "recv_forward";
    case P2PKind::kSendForward:
      return "send_forward";
    case P2PKind::kRecvBackward:
      return "recv_backward";
    case P2PKind::kSendBackward:
      return "send_backward";
  }
  throw Error("unknown P2PKind");
}

std::string describe(const PipelineAction& action) {
  std::string text =
      pass_letter(action.pass) + to_string(action.microbatch) + "." + to_string(action.model_chunk);
  if (action.recv) text += " " + name(action.recv->kind) + "<-" + to_string(action.recv->peer_stage);
  if (action.send) text += " " + name(action.send->kind) + "->" + to_string(action.send->peer_stage);
  return text;
}

PipelineSchedule pipeline_schedule(int stages, int model_chunks, int microbatches, int stage) {
  check_sizes(stages, model_chunks, microbatches, stage);
  PipelineSchedule schedule{
      PipelineScheduleKind::kNoPipelining, stages, model_chunks, microbatches, stage, 0, {}, {}};
  const ActionBuilder build(stages, model_chunks, stage);

  if (model_chunks == 1) {
    // Stage s runs PP - s - 1 forwards ahead so the last stage can start
    // 1F1B at once; each later stage is one forward behind its predecessor.
    // With one stage that is F0 B0 F1 B1 ..., Megatron's no-pipelining order.
    if (stages > 1) schedule.kind = PipelineScheduleKind::kOneForwardOneBackward;
    schedule.warmup_passes = std::min(stages - stage - 1, microbatches);
    const PassLayout layout(microbatches, schedule.warmup_passes);
    schedule.actions = layout.actions([&](int k) { return build.forward(k, 0); },
                                      [&](int k) { return build.backward(k, 0); });
    write_one_forward_one_backward_steps(schedule, layout);
    return schedule;
  }

  // Interleaved: pass k belongs to group k / (PP * VPP); within a group,
  // PP consecutive microbatches go through one chunk before the next chunk
  // starts, chunks ascending for forwards and descending for backwards.
  schedule.kind = PipelineScheduleKind::kInterleaved;
  const int passes = microbatches * model_chunks;
  const int group = stages * model_chunks;
  const auto microbatch_of = [&](int k) { return (k / group) * stages + k % stages; };
  const auto chunk_of = [&](int k) { return (k % group) / stages; };
  // Megatron runs every forward first when M = PP; otherwise each chunk
  // after the first adds PP warm-up passes, and each earlier stage two more.
  schedule.warmup_passes = microbatches == stages
                               ? passes
                               : std::min((stages - stage - 1) * 2 + (model_chunks - 1) * stages, passes);
  const PassLayout layout(passes, schedule.warmup_passes);
  schedule.actions =
      layout.actions([&](int k) { return build.forward(microbatch_of(k), chunk_of(k)); },
                     [&](int k) { return build.backward(microbatch_of(k), model_chunks - 1 - chunk_of(k)); });
  write_interleaved_steps(schedule, layout);
  return schedule;
}

}  // namespace moebench::train
