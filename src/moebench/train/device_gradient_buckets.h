#pragma once
// The gradient buckets of a model placed on a GPU, for Megatron's DDP
// reduction over the data-parallel ranks. A GPU model lays its parameters out
// itself (GPTModel places each group, e.g. one MoE layer's stacked expert
// weights, in one device allocation, and the grouped GEMMs rely on that
// layout), so its gradients are not re-bound to a ParamAndGradBuffer: each run
// of gradients lying back to back in one allocation is reduced in place, cut
// at parameter boundaries into buckets that close at or past bucket_elements.
//
// Every rank that holds the same model gets the same buckets (the same sizes
// in the same order), so their collectives match: allocations in the order the
// backward reaches their first gradient (the parameters' reverse order),
// buckets within one allocation in address order.
#include <cstdint>
#include <vector>

#include "moebench/core/tensor.h"
#include "moebench/model/parameter.h"

namespace moebench::train {

// Flat f32 views [n] of the gradient memory of `parameters`, which must be
// contiguous float32 tensors that do not overlap. Throws Error otherwise.
std::vector<Tensor> device_gradient_buckets(const std::vector<model::Parameter*>& parameters,
                                            int64_t bucket_elements);

}  // namespace moebench::train
