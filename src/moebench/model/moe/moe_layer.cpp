#include "moebench/model/moe/moe_layer.h"

#include "moebench/model/elementwise.h"

namespace moebench::model {

MoELayer::MoELayer(const std::string& prefix, const config::ModelConfig& config, uint64_t seed,
                   const ModelConventions& conventions)
    : router(prefix + ".router", config, seed, conventions),
      experts(prefix + ".experts", config, seed),
      dispatcher_(config.moe.num_experts) {
  if (config.moe.shared_expert_size > 0)
    shared_experts_.emplace(prefix + ".shared_experts", config, seed);
}

Tensor MoELayer::forward(const Tensor& inp, int64_t batch, int64_t seq, Context& context,
                         double& aux_loss) {
  const Routing routing = router.forward(inp, batch, seq, context.router, aux_loss);
  const Tensor permuted = dispatcher_.dispatch(inp, routing, context.dispatch);
  const Tensor expert_out =
      experts.forward(permuted, context.dispatch.tokens_per_expert, context.dispatch.group_counts,
                      context.experts);
  Tensor out = dispatcher_.combine(expert_out, context.dispatch);
  if (shared_experts_) {
    add_into(out, shared_experts_->forward(inp, context.shared));
  }
  return out;
}

Tensor MoELayer::backward(const Tensor& dout, const Context& context, double loss_scale) {
  Tensor dprobs;
  const Tensor dexpert_out = dispatcher_.combine_backward(dout, context.dispatch, dprobs);
  const Tensor dpermuted = experts.backward(dexpert_out, context.experts);
  Tensor dinp = dispatcher_.dispatch_backward(dpermuted, context.dispatch);
  add_into(dinp, router.backward(dprobs, context.router, loss_scale));
  if (shared_experts_) add_into(dinp, shared_experts_->backward(dout, context.shared));
  return dinp;
}

void MoELayer::collect(std::vector<Parameter*>& parameters) {
  parameters.push_back(&router.weight);
  experts.collect(parameters);
  if (shared_experts_) shared_experts_->collect(parameters);
}

}  // namespace moebench::model
