#include "moebench/model/moe/moe_layer.h"

#include <string>
#include <type_traits>

#include "moebench/core/error.h"

namespace moebench::model {
namespace {

using Dispatcher = MoELayer::Dispatcher;

Dispatcher make_dispatcher(const config::ModelConfig& config, const dist::ParallelState* parallel_state) {
  const int64_t experts = config.moe.num_experts;
  if (!parallel_state || parallel_state->group(GroupKind::kExpert).size() == 1)
    return SingleRankTokenDispatcher(experts);
  // Megatron's flex dispatcher moves rows as the all-to-all one does.
  if (config.moe.dispatcher == config::Dispatcher::AllGather)
    return AllGatherTokenDispatcher(experts, *parallel_state);
  return AllToAllTokenDispatcher(experts, *parallel_state);
}

int64_t first_local_expert(const Dispatcher& dispatcher) {
  return std::visit(
      [](const auto& d) -> int64_t {
        if constexpr (std::is_same_v<std::decay_t<decltype(d)>, SingleRankTokenDispatcher>) return 0;
        else return d.first_local_expert();
      },
      dispatcher);
}

int64_t num_local_experts(const Dispatcher& dispatcher, const config::ModelConfig& config) {
  return std::visit(
      [&config](const auto& d) -> int64_t {
        if constexpr (std::is_same_v<std::decay_t<decltype(d)>, SingleRankTokenDispatcher>)
          return config.moe.num_experts;
        else return d.num_local_experts();
      },
      dispatcher);
}

// The rows each local expert receives, on the host.
const std::vector<int64_t>& local_expert_counts(const SingleRankTokenDispatcher::Handle& h) {
  return h.tokens_per_expert;
}
const std::vector<int64_t>& local_expert_counts(const AllToAllTokenDispatcher::Handle& h) {
  return h.tokens_per_local_expert;
}
const std::vector<int64_t>& local_expert_counts(const AllGatherTokenDispatcher::Handle& h) {
  return h.tokens_per_local_expert;
}

// The grouped GEMMs' device counts: only the one-rank dispatcher runs on a GPU.
Tensor device_counts(const SingleRankTokenDispatcher::Handle& h) { return h.group_counts; }
template <class Handle>
Tensor device_counts(const Handle&) {
  return Tensor();
}

// Megatron's MoELayer refuses TP without SP: each tp rank must route its own tokens.
dist::TensorParallelRegions moe_tensor_parallel(const config::ModelConfig& config,
                                                const dist::ParallelState* parallel_state) {
  const auto tp = dist::TensorParallelRegions::of(parallel_state, config.sequence_parallel);
  if (tp.is_parallel() && !tp.sequence_parallel())
    throw Error("MoE layers with TP=" + std::to_string(tp.size()) +
                " need sequence parallelism, as in Megatron; add --sequence-parallel");
  return tp;
}

}  // namespace

MoELayer::MoELayer(const std::string& prefix, const config::ModelConfig& config, uint64_t seed,
                   const ModelConventions& conventions, const dist::ParallelState* parallel_state)
    : dispatcher_(make_dispatcher(config, parallel_state)),
      router(prefix + ".router", config, seed, conventions, moe_tensor_parallel(config, parallel_state)),
      experts(prefix + ".experts", config, seed, first_local_expert(dispatcher_),
              num_local_experts(dispatcher_, config)) {
  if (config.moe.shared_expert_size > 0)
    shared_experts_.emplace(prefix + ".shared_experts", config, seed,
                            moe_tensor_parallel(config, parallel_state));
}

Tensor MoELayer::forward(const Tensor& inp, int64_t batch, int64_t seq, Context& context,
                         double& aux_loss, const Tensor& residual) {
  const Routing routing = router.forward(inp, batch, seq, context.router, aux_loss);
  Tensor out = std::visit(
      [&](const auto& dispatcher) {
        using Handle = typename std::decay_t<decltype(dispatcher)>::Handle;
        Handle& handle = context.dispatch.emplace<Handle>();
        const Tensor expert_in = dispatcher.dispatch(inp, routing, handle);
        const Tensor expert_out =
            experts.forward(expert_in, local_expert_counts(handle), device_counts(handle), context.experts);
        return dispatcher.combine(expert_out, handle, residual);
      },
      dispatcher_);
  if (shared_experts_) out = shared_experts_->forward(inp, context.shared, out);
  return out;
}

Tensor MoELayer::backward(const Tensor& dout, const Context& context, double loss_scale) {
  Tensor dprobs;
  Tensor dinp = std::visit(
      [&](const auto& dispatcher) {
        using Handle = typename std::decay_t<decltype(dispatcher)>::Handle;
        const Handle& handle = std::get<Handle>(context.dispatch);
        const Tensor dexpert_out = dispatcher.combine_backward(dout, handle, dprobs);
        const Tensor dexpert_in = experts.backward(dexpert_out, context.experts);
        return dispatcher.dispatch_backward(dexpert_in, handle);
      },
      dispatcher_);
  router.backward_accumulate(dinp, dprobs, context.router, loss_scale);
  if (shared_experts_) shared_experts_->backward_accumulate(dinp, dout, context.shared);
  return dinp;
}

void MoELayer::collect(std::vector<Parameter*>& parameters) {
  parameters.push_back(&router.weight);
  experts.collect(parameters);
  if (shared_experts_) shared_experts_->collect(parameters);
}

}  // namespace moebench::model
