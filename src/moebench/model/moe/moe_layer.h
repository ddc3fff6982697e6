#pragma once
// Megatron-Core's MoELayer: route -> dispatch -> routed experts -> combine,
// plus the shared experts on the same input, summed.
//
// Parameters under `prefix` (decoder.layers.N.mlp): router.*, experts.*,
// shared_experts.* (see router.h, grouped_experts.h, shared_experts.h).
#include <optional>
#include <string>
#include <vector>

#include "moebench/config/model_config.h"
#include "moebench/model/model_conventions.h"
#include "moebench/model/moe/grouped_experts.h"
#include "moebench/model/moe/router.h"
#include "moebench/model/moe/shared_experts.h"
#include "moebench/model/moe/token_dispatcher.h"

namespace moebench::model {

class MoELayer {
 public:
  struct Context {
    TopKRouter::Context router;
    SingleRankTokenDispatcher::Handle dispatch;
    GroupedExperts::Context experts;
    SharedExperts::Context shared;
  };

  MoELayer(const std::string& prefix, const config::ModelConfig& config, uint64_t seed,
           const ModelConventions& conventions);

  // inp [B*S, h] -> out [B*S, h]; adds the router's aux losses to aux_loss.
  Tensor forward(const Tensor& inp, int64_t batch, int64_t seq, Context& context,
                 double& aux_loss);
  Tensor backward(const Tensor& dout, const Context& context, double loss_scale);

  void collect(std::vector<Parameter*>& parameters);

  TopKRouter router;
  GroupedExperts experts;

 private:
  SingleRankTokenDispatcher dispatcher_;
  std::optional<SharedExperts> shared_experts_;
};

}  // namespace moebench::model
