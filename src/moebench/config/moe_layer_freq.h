#pragma once
// Megatron's --moe-layer-freq: an integer N (every N-th layer is MoE, layer 0
// included) or a Python-style list expression such as ([0]+[1]*26) or
// [0,1,1], giving one 0/1 per layer.
#include <string_view>
#include <vector>

namespace moebench::config {

// One entry per layer: true where the layer's MLP is a MoE layer.
std::vector<bool> parse_moe_layer_freq(std::string_view text, int num_layers);

}  // namespace moebench::config
