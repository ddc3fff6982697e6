// Pipeline schedules: hand-checked action lists for small cases, then a
// simulator that runs every rank's list at once and checks the transfers
// meet, carry the right microbatch, cannot deadlock and keep as many
// activations alive as the schedule promises, over a sweep of PP, VPP, M.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <tuple>

#include "moebench/core/error.h"
#include "moebench/train/pipeline_schedule.h"

namespace moebench::train {
namespace {

using ::testing::HasSubstr;

std::vector<std::string> described(const PipelineSchedule& schedule) {
  std::vector<std::string> lines;
  for (const PipelineAction& action : schedule.actions) lines.push_back(describe(action));
  return lines;
}

TEST(PipelineSchedule, OneStageRunsForwardThenBackwardPerMicrobatch) {
  const PipelineSchedule schedule = pipeline_schedule(1, 1, 3, 0);
  EXPECT_EQ(schedule.kind, PipelineScheduleKind::kNoPipelining);
  EXPECT_EQ(described(schedule), (std::vector<std::string>{"F0.0", "B0.0", "F1.0", "B1.0", "F2.0", "B2.0"}));
}

TEST(PipelineSchedule, OneForwardOneBackwardOnTwoStagesAndFourMicrobatches) {
  // Stage 0 warms up with PP - 0 - 1 = 1 forward; stage 1 with none.
  const PipelineSchedule first = pipeline_schedule(2, 1, 4, 0);
  EXPECT_EQ(first.kind, PipelineScheduleKind::kOneForwardOneBackward);
  EXPECT_EQ(first.warmup_passes, 1);
  EXPECT_EQ(described(first),
            (std::vector<std::string>{"F0.0 send_forward->1", "F1.0 send_forward->1", "B0.0 recv_backward<-1",
                                      "F2.0 send_forward->1", "B1.0 recv_backward<-1", "F3.0 send_forward->1",
                                      "B2.0 recv_backward<-1", "B3.0 recv_backward<-1"}));
  const PipelineSchedule last = pipeline_schedule(2, 1, 4, 1);
  EXPECT_EQ(last.warmup_passes, 0);
  EXPECT_EQ(described(last), (std::vector<std::string>{"F0.0 recv_forward<-0", "B0.0 send_backward->0",
                                                       "F1.0 recv_forward<-0", "B1.0 send_backward->0",
                                                       "F2.0 recv_forward<-0", "B2.0 send_backward->0",
                                                       "F3.0 recv_forward<-0", "B3.0 send_backward->0"}));
}

TEST(PipelineSchedule, InterleavedOnTwoStagesTwoChunksAndFourMicrobatches) {
  // Passes go in groups of PP = 2 microbatches per chunk: forwards
  // (0,c0) (1,c0) (0,c1) (1,c1) (2,c0) (3,c0) (2,c1) (3,c1); backwards the
  // same microbatches with the chunks reversed. Warm-up: stage 0
  // (2-0-1)*2 + (2-1)*2 = 4 passes, stage 1 (2-1-1)*2 + 2 = 2.
  const PipelineSchedule first = pipeline_schedule(2, 2, 4, 0);
  EXPECT_EQ(first.kind, PipelineScheduleKind::kInterleaved);
  EXPECT_EQ(first.warmup_passes, 4);
  EXPECT_EQ(described(first),
            (std::vector<std::string>{
                // warm-up
                "F0.0 send_forward->1", "F1.0 send_forward->1", "F0.1 recv_forward<-1 send_forward->1",
                "F1.1 recv_forward<-1 send_forward->1",
                // steady
                "F2.0 send_forward->1", "B0.1 recv_backward<-1 send_backward->1", "F3.0 send_forward->1",
                "B1.1 recv_backward<-1 send_backward->1", "F2.1 recv_forward<-1 send_forward->1",
                "B0.0 recv_backward<-1", "F3.1 recv_forward<-1 send_forward->1", "B1.0 recv_backward<-1",
                // cool-down
                "B2.1 recv_backward<-1 send_backward->1", "B3.1 recv_backward<-1 send_backward->1",
                "B2.0 recv_backward<-1", "B3.0 recv_backward<-1"}));
  const PipelineSchedule last = pipeline_schedule(2, 2, 4, 1);
  EXPECT_EQ(last.warmup_passes, 2);
  EXPECT_EQ(
      described(last),
      (std::vector<std::string>{
          // warm-up
          "F0.0 recv_forward<-0 send_forward->0", "F1.0 recv_forward<-0 send_forward->0",
          // steady
          "F0.1 recv_forward<-0", "B0.1 send_backward->0", "F1.1 recv_forward<-0", "B1.1 send_backward->0",
          "F2.0 recv_forward<-0 send_forward->0", "B0.0 recv_backward<-0 send_backward->0",
          "F3.0 recv_forward<-0 send_forward->0", "B1.0 recv_backward<-0 send_backward->0",
          "F2.1 recv_forward<-0", "B2.1 send_backward->0", "F3.1 recv_forward<-0", "B3.1 send_backward->0",
          // cool-down
          "B2.0 recv_backward<-0 send_backward->0", "B3.0 recv_backward<-0 send_backward->0"}));
}

// Each step as Megatron would name it: a pass ("F1.0"), or an exchange by
// its p2p_communication name followed by the passes whose tensors it moves,
// in the order send forward, send backward, recv forward, recv backward.
std::vector<std::string> described_steps(const PipelineSchedule& s) {
  const auto label = [&](int index) {
    const PipelineAction& a = s.actions[size_t(index)];
    return std::string(a.pass == PassKind::kForward ? "F" : "B") + std::to_string(a.microbatch) + "." +
           std::to_string(a.model_chunk);
  };
  std::vector<std::string> lines;
  for (const PipelineStep& step : s.steps) {
    if (step.run) {
      lines.push_back(label(*step.run));
      continue;
    }
    const P2PExchange& e = step.exchange;
    std::string sends, recvs, passes;
    const auto add = [&](std::string& group, const char* direction, std::optional<int> action) {
      if (!action) return;
      group += group.empty() ? direction : std::string("_") + direction;
      passes += " " + label(*action);
    };
    add(sends, "forward", e.send_forward);
    add(sends, "backward", e.send_backward);
    add(recvs, "forward", e.recv_forward);
    add(recvs, "backward", e.recv_backward);
    std::string name = sends.empty() ? "" : "send_" + sends;
    if (!recvs.empty()) name += (name.empty() ? "recv_" : "_recv_") + recvs;
    lines.push_back(name + passes);
  }
  return lines;
}

TEST(PipelineSchedule, OneForwardOneBackwardExchangesAsMegatron) {
  EXPECT_EQ(described_steps(pipeline_schedule(2, 1, 4, 0)),
            (std::vector<std::string>{"F0.0", "send_forward F0.0",                             // warm-up
                                      "F1.0", "send_forward_recv_backward F1.0 B0.0", "B0.0",  // steady
                                      "F2.0", "send_forward_recv_backward F2.0 B1.0", "B1.0", "F3.0",
                                      "send_forward_recv_backward F3.0 B2.0", "B2.0", "recv_backward B3.0",
                                      "B3.0"}));  // cool-down
  EXPECT_EQ(described_steps(pipeline_schedule(2, 1, 4, 1)),
            (std::vector<std::string>{
                "recv_forward F0.0", "F0.0", "B0.0", "send_backward_recv_forward B0.0 F1.0", "F1.0", "B1.0",
                "send_backward_recv_forward B1.0 F2.0", "F2.0", "B2.0",
                "send_backward_recv_forward B2.0 F3.0", "F3.0", "B3.0", "send_backward B3.0"}));
}

TEST(PipelineSchedule, InterleavedExchangesAsMegatron) {
  // Stage 1 of PP=2, VPP=2, M=4 (actions in the test above): the steady
  // forward and backward run back to back, then one exchange moves up to
  // all four tensors; the last virtual stage (chunk 1 here) neither sends
  // forward nor receives backward.
  EXPECT_EQ(
      described_steps(pipeline_schedule(2, 2, 4, 1)),
      (std::vector<std::string>{
          "recv_forward F0.0",
          // warm-up
          "F0.0", "send_forward_recv_forward F0.0 F1.0", "F1.0", "send_forward_recv_forward F1.0 F0.1",
          // steady
          "F0.1", "B0.1", "send_backward_recv_forward B0.1 F1.1", "F1.1", "B1.1",
          "send_backward_recv_forward_backward B1.1 F2.0 B0.0", "F2.0", "B0.0",
          "send_forward_backward_recv_forward_backward F2.0 B0.0 F3.0 B1.0", "F3.0", "B1.0",
          "send_forward_backward_recv_forward F3.0 B1.0 F2.1", "F2.1", "B2.1",
          "send_backward_recv_forward B2.1 F3.1", "F3.1", "B3.1", "send_backward_recv_backward B3.1 B2.0",
          // cool-down
          "B2.0", "send_backward_recv_backward B2.0 B3.0", "B3.0", "send_backward B3.0"}));
}

TEST(PipelineSchedule, InterleavedRunsAllForwardsFirstWhenMicrobatchesEqualStages) {
  // Megatron's special case M = PP: every pass is warm-up.
  const PipelineSchedule schedule = pipeline_schedule(4, 2, 4, 3);
  EXPECT_EQ(schedule.warmup_passes, 8);
  for (int k = 0; k < 8; ++k) EXPECT_EQ(schedule.actions[k].pass, PassKind::kForward) << k;
  for (int k = 8; k < 16; ++k) EXPECT_EQ(schedule.actions[k].pass, PassKind::kBackward) << k;
}

TEST(PipelineSchedule, RejectsSizesMegatronRejects) {
  const auto message_of = [](auto build) {
    try {
      build();
    } catch (const Error& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(message_of([] { pipeline_schedule(4, 2, 6, 0); }), HasSubstr("multiple of PP=4"));
  EXPECT_THAT(message_of([] { pipeline_schedule(1, 2, 4, 0); }), HasSubstr("needs PP > 1"));
  EXPECT_THAT(message_of([] { pipeline_schedule(2, 1, 4, 2); }), HasSubstr("stage 2"));
  EXPECT_THAT(message_of([] { pipeline_schedule(2, 1, 0, 0); }), HasSubstr("M=0"));
  // 1F1B has no such condition.
  EXPECT_NO_THROW(pipeline_schedule(4, 1, 6, 0));
}

// ---- The simulator -------------------------------------------------------

// Every action runs once; every transfer it has is in exactly one exchange,
// of the right field, its receive before it runs and its send after.
void expect_steps_cover_every_transfer(const PipelineSchedule& s) {
  const size_t n = s.actions.size();
  std::vector<int> runs(n, 0), receives(n, 0), sends(n, 0);
  const auto post = [&](std::optional<int> action, PassKind pass, bool is_send) {
    if (!action) return;
    const PipelineAction& a = s.actions.at(size_t(*action));
    EXPECT_EQ(a.pass, pass) << describe(a);
    EXPECT_TRUE(is_send ? a.send.has_value() : a.recv.has_value()) << describe(a);
    EXPECT_EQ(runs[*action], is_send ? 1 : 0)
        << describe(a) << (is_send ? " sent before it ran" : " received after it ran");
    ++(is_send ? sends : receives)[*action];
  };
  for (const PipelineStep& step : s.steps) {
    if (step.run) {
      ++runs.at(size_t(*step.run));
      continue;
    }
    post(step.exchange.send_forward, PassKind::kForward, true);
    post(step.exchange.send_backward, PassKind::kBackward, true);
    post(step.exchange.recv_forward, PassKind::kForward, false);
    post(step.exchange.recv_backward, PassKind::kBackward, false);
  }
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(runs[i], 1) << describe(s.actions[i]);
    EXPECT_EQ(receives[i], s.actions[i].recv ? 1 : 0) << describe(s.actions[i]);
    EXPECT_EQ(sends[i], s.actions[i].send ? 1 : 0) << describe(s.actions[i]);
  }
}

// A tensor crossing a stage boundary, named by what produced it.
struct Message {
  PassKind pass;
  int microbatch;
  int virtual_stage;  // the sender's
  friend bool operator==(const Message&, const Message&) = default;
};

// A send or a receive of one rank, with the tensor sent or expected.
struct Transfer {
  int peer;
  Message message;
  bool done = false;
};

// One call of a rank: a pass, or transfers posted together and awaited
// together, in the order PipelineP2P::communicate lists them.
struct Call {
  std::optional<int> run;
  std::vector<Transfer> sends;
  std::vector<Transfer> recvs;
  bool finished() const {
    const auto done = [](const Transfer& t) { return t.done; };
    return std::all_of(sends.begin(), sends.end(), done) && std::all_of(recvs.begin(), recvs.end(), done);
  }
};

int virtual_stage(const PipelineSchedule& s, int chunk) { return chunk * s.stages + s.stage; }

// How a rank performs an exchange.
enum class Posting {
  kTogether,  // one call, as PipelineP2P::communicate
  kOneByOne,  // a blocking call per transfer: deadlocks, the simulator must say so
};

std::vector<Call> calls(const PipelineSchedule& s, Posting posting) {
  const auto send_of = [&](std::optional<int> index, std::vector<Transfer>& out) {
    if (!index) return;
    const PipelineAction& a = s.actions[size_t(*index)];
    out.push_back({a.send->peer_stage, {a.pass, a.microbatch, virtual_stage(s, a.model_chunk)}});
  };
  const auto recv_of = [&](std::optional<int> index, std::vector<Transfer>& out) {
    if (!index) return;
    const PipelineAction& a = s.actions[size_t(*index)];
    const int from = virtual_stage(s, a.model_chunk) + (a.pass == PassKind::kForward ? -1 : 1);
    out.push_back({a.recv->peer_stage, {a.pass, a.microbatch, from}});
  };
  std::vector<Call> result;
  for (const PipelineStep& step : s.steps) {
    if (step.run) {
      result.push_back({step.run, {}, {}});
      continue;
    }
    Call call;
    send_of(step.exchange.send_forward, call.sends);
    send_of(step.exchange.send_backward, call.sends);
    recv_of(step.exchange.recv_forward, call.recvs);
    recv_of(step.exchange.recv_backward, call.recvs);
    if (posting == Posting::kTogether) {
      result.push_back(call);
      continue;
    }
    for (const Transfer& t : call.sends) result.push_back({std::nullopt, {t}, {}});
    for (const Transfer& t : call.recvs) result.push_back({std::nullopt, {}, {t}});
  }
  return result;
}

struct Simulation {
  bool deadlocked = false;
  std::vector<std::string> errors;
  std::vector<int> peak_activations;  // per rank
  // When each (pass, microbatch, virtual stage) ran, in a global order.
  std::map<std::tuple<PassKind, int, int>, int> ran_at;
};

// Runs every rank's steps together. A send completes only when its receiver
// has posted the matching receive (the strictest blocking semantics, as
// NCCL or MPI_Ssend), so an order that passes here cannot deadlock with
// buffered sends either. Between two ranks, sends and receives match in the
// order each side posts them, as in MPI and NCCL.
Simulation simulate(int stages, int model_chunks, int microbatches, Posting posting = Posting::kTogether) {
  std::vector<PipelineSchedule> schedules;
  std::vector<std::vector<Call>> programs;
  for (int stage = 0; stage < stages; ++stage) {
    schedules.push_back(pipeline_schedule(stages, model_chunks, microbatches, stage));
    programs.push_back(calls(schedules.back(), posting));
  }
  Simulation sim;
  sim.peak_activations.assign(stages, 0);
  std::vector<size_t> at(stages, 0);
  std::vector<int> alive(stages, 0);
  int clock = 0;
  const auto done = [&](int r) { return at[r] == programs[r].size(); };
  // The first pending transfer with `peer` in rank r's current call.
  const auto pending = [&](int r, bool send, int peer) -> Transfer* {
    if (done(r)) return nullptr;
    for (Transfer& t : send ? programs[r][at[r]].sends : programs[r][at[r]].recvs)
      if (!t.done && t.peer == peer) return &t;
    return nullptr;
  };

  for (bool progress = true; progress;) {
    progress = false;
    for (int r = 0; r < stages; ++r) {
      for (; !done(r) && programs[r][at[r]].finished(); ++at[r], progress = true) {
        if (!programs[r][at[r]].run) continue;
        const PipelineAction& a = schedules[r].actions[size_t(*programs[r][at[r]].run)];
        const auto key = std::make_tuple(a.pass, a.microbatch, virtual_stage(schedules[r], a.model_chunk));
        if (!sim.ran_at.emplace(key, clock++).second)
          sim.errors.push_back("rank " + std::to_string(r) + " ran " + describe(a) + " twice");
        alive[r] += a.pass == PassKind::kForward ? 1 : -1;
        sim.peak_activations[r] = std::max(sim.peak_activations[r], alive[r]);
      }
    }
    for (int r = 0; r < stages; ++r) {
      for (int peer = 0; peer < stages; ++peer) {
        Transfer* send = pending(r, true, peer);
        Transfer* recv = send ? pending(peer, false, r) : nullptr;
        if (!recv) continue;
        if (!(recv->message == send->message))
          sim.errors.push_back("rank " + std::to_string(peer) + " received microbatch " +
                               std::to_string(send->message.microbatch) + " of virtual stage " +
                               std::to_string(send->message.virtual_stage) + " expecting microbatch " +
                               std::to_string(recv->message.microbatch) + " of virtual stage " +
                               std::to_string(recv->message.virtual_stage));
        send->done = recv->done = progress = true;
      }
    }
  }
  for (int r = 0; r < stages; ++r) sim.deadlocked |= !done(r);
  return sim;
}

// Every microbatch went forward through virtual stages 0..V-1 in order, then
// backward V-1..0, each exactly once.
void expect_every_microbatch_walks_the_pipeline(const Simulation& sim, int virtual_stages, int microbatches) {
  EXPECT_EQ(sim.ran_at.size(), size_t(2 * virtual_stages * microbatches));
  for (int m = 0; m < microbatches; ++m) {
    int last = -1;
    const auto expect_after = [&](PassKind pass, int v) {
      const auto found = sim.ran_at.find({pass, m, v});
      ASSERT_NE(found, sim.ran_at.end()) << "microbatch " << m << " virtual stage " << v;
      EXPECT_GT(found->second, last) << "microbatch " << m << " virtual stage " << v << " out of order";
      last = found->second;
    };
    for (int v = 0; v < virtual_stages; ++v) expect_after(PassKind::kForward, v);
    for (int v = virtual_stages - 1; v >= 0; --v) expect_after(PassKind::kBackward, v);
  }
}

TEST(PipelineSchedule, SimulatorCatchesADeadlockingOrder) {
  // 1F1B on two stages with a blocking call per transfer: stage 0 sends F1's
  // output while stage 1 sends B0's gradient, and neither receives.
  EXPECT_TRUE(simulate(2, 1, 4, Posting::kOneByOne).deadlocked);
  EXPECT_FALSE(simulate(2, 1, 4, Posting::kTogether).deadlocked);
}

TEST(PipelineSchedule, SimulatedRanksNeverDeadlockAndKeepTheExpectedActivations) {
  for (int stages = 1; stages <= 8; ++stages) {
    for (int chunks = 1; chunks <= 4; ++chunks) {
      if (chunks > 1 && stages == 1) continue;
      for (int groups : {1, 2, 3, 5}) {
        // Interleaving needs M a multiple of PP; 1F1B also runs M < PP.
        std::vector<int> microbatch_counts = {groups * stages};
        if (chunks == 1) microbatch_counts.push_back(groups);
        for (int microbatches : microbatch_counts) {
          SCOPED_TRACE("PP=" + std::to_string(stages) + " VPP=" + std::to_string(chunks) +
                       " M=" + std::to_string(microbatches));
          for (int stage = 0; stage < stages; ++stage)
            expect_steps_cover_every_transfer(pipeline_schedule(stages, chunks, microbatches, stage));
          const Simulation sim = simulate(stages, chunks, microbatches);
          ASSERT_FALSE(sim.deadlocked);
          EXPECT_THAT(sim.errors, ::testing::IsEmpty());
          expect_every_microbatch_walks_the_pipeline(sim, stages * chunks, microbatches);
          for (int rank = 0; rank < stages; ++rank) {
            const int passes = microbatches * chunks;
            int expected;
            if (chunks == 1) {
              expected = std::min(stages - rank, microbatches);  // 1F1B: PP - rank in flight
            } else if (microbatches == stages) {
              expected = passes;
            } else {
              expected = std::min((stages - rank - 1) * 2 + (chunks - 1) * stages + 1, passes);
            }
            EXPECT_EQ(sim.peak_activations[rank], expected) << "rank " << rank;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace moebench::train
