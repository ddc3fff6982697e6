#pragma once
// Dense matrix products: the general GEMM and the linear layer built on it.
// All matrices are row-major and contiguous. Forward and backward take their
// arguments in the same order; parameter gradients accumulate (+=),
// activation gradients are written (=). The optional bias pointers are
// std::type_identity_t<T> so that T is deduced from the other arrays and
// nullptr can be passed.
#include <cstdint>
#include <type_traits>

namespace moebench::ops {

// Which operands of C[M,N] = A @ B are stored transposed, named as BLAS and
// DeepGEMM name them: the first letter is A, the second is B.
//   kNN  A is [M,K], B is [K,N]   (activation gradient: dinp = dout @ W)
//   kNT  A is [M,K], B is [N,K]   (forward: out = inp @ W^T)
//   kTN  A is [K,M], B is [K,N]   (weight gradient: dW = dout^T @ inp)
enum class GemmLayout { kNN, kNT, kTN };

// Whether the product replaces C or is added to it (BLAS beta = 0 or 1).
enum class GemmOutput { kOverwrite, kAccumulate };

}  // namespace moebench::ops

namespace moebench::ops::cpu {

// c[M,N] (=|+=) op(a) @ op(b), with op() chosen by `layout`.
// Instantiated for float and double.
template <typename T>
void gemm(T* c, const T* a, const T* b, std::int64_t m, std::int64_t n, std::int64_t k,
          GemmLayout layout, GemmOutput output);

// out[N,OC] = inp[N,IC] @ weight[OC,IC]^T + bias[OC]; bias may be nullptr.
template <typename T>
void linear_forward(T* out, const T* inp, const T* weight, const std::type_identity_t<T>* bias,
                    std::int64_t n, std::int64_t in_features, std::int64_t out_features);

// dinp[N,IC] = dout @ weight; dweight[OC,IC] += dout^T @ inp;
// dbias[OC] += column sums of dout (pass nullptr when the layer has no bias).
template <typename T>
void linear_backward(T* dinp, T* dweight, std::type_identity_t<T>* dbias, const T* dout,
                     const T* inp, const T* weight, std::int64_t n, std::int64_t in_features,
                     std::int64_t out_features);

}  // namespace moebench::ops::cpu
