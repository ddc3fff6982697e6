#pragma once
// Megatron-Core's MoELayer: route -> dispatch -> routed experts -> combine,
// plus the shared experts on the same input, summed. The sums need no adds
// of their own: the shared experts' output takes the combined one as its
// residual, and the router's and the shared experts' input gradients
// accumulate into the one from the routed experts (in their GEMMs, with one
// tp rank).
//
// Without expert parallelism (no ParallelState, or an ep group of one) the
// layer holds every expert and its tokens stay on this rank. With EP > 1 it
// holds its ep rank's E / EP experts and moves the routed rows to the ranks of
// their experts with the dispatcher --moe-token-dispatcher-type names
// (alltoall and flex: AllToAllTokenDispatcher; allgather:
// AllGatherTokenDispatcher); the router and the shared experts stay
// replicated. CPU float32 only.
//
// With TP > 1 (expert-TP 1, sequence parallel, as Megatron requires for MoE
// with TP) each tp rank routes and dispatches its own token rows; the ep
// group follows Megatron's expert grid, which folds the tp ranks into it.
// The router is replicated; the shared experts are tensor-parallel like the
// dense MLP.
//
// Parameters under `prefix` (decoder.layers.N.mlp): router.*, experts.*,
// shared_experts.* (see router.h, grouped_experts.h, shared_experts.h).
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "moebench/config/model_config.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/model/model_conventions.h"
#include "moebench/model/moe/allgather_token_dispatcher.h"
#include "moebench/model/moe/alltoall_token_dispatcher.h"
#include "moebench/model/moe/grouped_experts.h"
#include "moebench/model/moe/router.h"
#include "moebench/model/moe/shared_experts.h"
#include "moebench/model/moe/token_dispatcher.h"

namespace moebench::model {

class MoELayer {
 public:
  // The one-rank dispatcher or one of the expert-parallel ones.
  using Dispatcher = std::variant<SingleRankTokenDispatcher, AllToAllTokenDispatcher, AllGatherTokenDispatcher>;

 private:
  // First, so the experts can be built for its local experts.
  Dispatcher dispatcher_;

 public:
  struct Context {
    TopKRouter::Context router;
    // The handle of the layer's dispatcher (the same alternative).
    std::variant<SingleRankTokenDispatcher::Handle, AllToAllTokenDispatcher::Handle,
                 AllGatherTokenDispatcher::Handle>
        dispatch;
    GroupedExperts::Context experts;
    SharedExperts::Context shared;
  };

  // `parallel_state` null: one rank holding every expert. Otherwise kept by
  // reference; with an ep group of more than one rank forward and backward are
  // collective over it (over tp_ep for allgather), and over tp with TP > 1.
  // Throws Error for TP > 1 without config.sequence_parallel.
  MoELayer(const std::string& prefix, const config::ModelConfig& config, uint64_t seed,
           const ModelConventions& conventions, const dist::ParallelState* parallel_state = nullptr);

  // inp [B*S, h] -> out [B*S, h] (+ residual [B*S, h] when given, added by
  // the token combine); adds the router's aux losses to aux_loss.
  Tensor forward(const Tensor& inp, int64_t batch, int64_t seq, Context& context, double& aux_loss,
                 const Tensor& residual = Tensor());
  Tensor backward(const Tensor& dout, const Context& context, double loss_scale);

  void collect(std::vector<Parameter*>& parameters);

  TopKRouter router;
  GroupedExperts experts;

 private:
  std::optional<SharedExperts> shared_experts_;
};

}  // namespace moebench::model
