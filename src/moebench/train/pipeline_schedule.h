#pragma once
// The order in which one pipeline rank runs the forward and backward passes
// of one iteration, as Megatron-Core's schedules compute it (the layers of
// each (stage, model chunk) are model/pipeline_stage_layout.h's). Pure
// arithmetic: no communication.
//
// Megatron's three schedules:
//   PP = 1          forward_backward_no_pipelining: F0 B0 F1 B1 ...
//   PP > 1, VPP = 1 forward_backward_pipelining_without_interleaving (1F1B):
//                   warm-up forwards, steady (forward, backward) pairs,
//                   cool-down backwards
//   PP > 1, VPP > 1 forward_backward_pipelining_with_interleaving: the same
//                   three phases over M x VPP (microbatch, model chunk) passes
//
// Model chunk c of stage s is virtual stage v = c * PP + s: a microbatch's
// forward visits v = 0, 1, ..., PP * VPP - 1 and its backward the reverse, so
// the last stage's chunk c hands its activations to stage 0's chunk c + 1.
//
// Each pass names the transfers it implies: a forward receives its input
// from the previous virtual stage (recv_forward) and sends its output to the
// next (send_forward); a backward receives the gradient of its output from
// the next virtual stage (recv_backward) and sends the gradient of its input
// to the previous (send_backward). The first virtual stage reads its input
// from the data and the last one computes the loss, so they have no such
// transfer.
//
// When the transfers happen is part of the schedule, as in Megatron: the
// rank's steps run passes and exchanges, an exchange posting up to four
// transfers at once and waiting for all (p2p_communication._communicate;
// dist::PipelineP2P::communicate). 1F1B exchanges after every pass
// (send_forward_recv_backward after a steady forward, send_backward_recv_
// forward after a backward); the interleaved schedule runs a steady
// forward and backward back to back and then exchanges all four
// (send_forward_backward_recv_forward_backward). Posting the transfers of
// an exchange together is what keeps neighbours that send to each other at
// the same time from deadlocking (in 1F1B's steady state stage s sends an
// activation to stage s + 1 while that one sends a gradient back);
// tests/train_pipeline_schedule_test.cpp runs every stage's steps together,
// with sends that wait for their receiver, and finds no deadlock and every
// tensor reaching the pass it is meant for, for PP 1..8 and VPP 1..4.
#include <optional>
#include <string>
#include <vector>


namespace moebench::train {

enum class PipelineScheduleKind { kNoPipelining, kOneForwardOneBackward, kInterleaved };

enum class PassKind { kForward, kBackward };

enum class P2PKind { kRecvForward, kSendForward, kRecvBackward, kSendBackward };

// "recv_forward", "send_forward", "recv_backward" or "send_backward".
std::string name(P2PKind kind);

// One transfer with a neighbouring pipeline stage (a rank of the pp group).
struct P2PTransfer {
  P2PKind kind;
  int peer_stage;
  friend bool operator==(const P2PTransfer&, const P2PTransfer&) = default;
};

// One forward or backward pass of one microbatch through one model chunk,
// with the receive it waits for and the send it ends with.
struct PipelineAction {
  PassKind pass;
  int microbatch;
  int model_chunk;
  std::optional<P2PTransfer> recv;
  std::optional<P2PTransfer> send;
  friend bool operator==(const PipelineAction&, const PipelineAction&) = default;
};

// "F3.1 recv_forward<-0 send_forward->2": pass, microbatch.chunk, transfers.
std::string describe(const PipelineAction& action);

// Transfers posted together and awaited together, each naming the action
// (an index into PipelineSchedule::actions) whose send or receive it is.
struct P2PExchange {
  std::optional<int> send_forward = std::nullopt;   // that forward's output, to the next stage
  std::optional<int> send_backward = std::nullopt;  // that backward's input gradient, to the previous stage
  std::optional<int> recv_forward = std::nullopt;   // that forward's input, from the previous stage
  std::optional<int> recv_backward = std::nullopt;  // that backward's output gradient, from the next stage
  friend bool operator==(const P2PExchange&, const P2PExchange&) = default;
};

// One step of a rank: run one action, or perform one exchange.
struct PipelineStep {
  std::optional<int> run;  // an index into PipelineSchedule::actions
  P2PExchange exchange;    // when run is empty
  friend bool operator==(const PipelineStep&, const PipelineStep&) = default;
};

struct PipelineSchedule {
  PipelineScheduleKind kind;
  int stages;                           // PP
  int model_chunks;                     // VPP
  int microbatches;                     // M
  int stage;                            // this rank's stage
  int warmup_passes;                    // forwards before the first backward is interleaved
  std::vector<PipelineAction> actions;  // the passes, in the order they run
  std::vector<PipelineStep> steps;      // the passes and the exchanges between them
};

// The schedule of `stage` for PP stages, VPP model chunks and M microbatches.
// Throws Error for sizes below 1, a stage out of range, VPP > 1 with PP = 1
// (Megatron interleaves only across stages), or VPP > 1 with M not a
// multiple of PP (Megatron's condition: the interleaved schedule walks the
// microbatches in groups of PP).
PipelineSchedule pipeline_schedule(int stages, int model_chunks, int microbatches, int stage);

}  // namespace moebench::train
