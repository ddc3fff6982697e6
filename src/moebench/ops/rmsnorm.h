#pragma once
// RMSNorm over the last dimension, as Megatron-Core's RMSNorm:
//   out = inp * rstd * weight,  rstd = 1 / sqrt(mean(inp^2) + eps).
// Megatron computes the norm in fp32; the reference runs in T (float or
// double). Forward and backward take their arguments in the same order;
// parameter gradients accumulate (+=), activation gradients are written (=).
// Scalars are std::type_identity_t<T> so that T is deduced from the arrays
// alone and a literal such as 1e-5 can be passed for eps.
#include <cstdint>
#include <type_traits>

namespace moebench::ops::cpu {

// out[N,C] and rstd[N] (saved for the backward) from inp[N,C] and weight[C].
// Instantiated for float and double.
template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* weight, std::int64_t n, std::int64_t c,
                     std::type_identity_t<T> eps);

// dinp[N,C] is written, dweight[C] accumulated; rstd[N] is the forward's.
template <typename T>
void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight,
                      const T* rstd, std::int64_t n, std::int64_t c);

}  // namespace moebench::ops::cpu
