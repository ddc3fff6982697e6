#pragma once
// Pointwise and row-wise activations: sigmoid and softmax over the last
// dimension (the router's score functions). Each backward takes the
// forward's output, which is what the gradient is expressed in; activation
// gradients are written (=).
#include <cmath>
#include <cstdint>

namespace moebench::ops::cpu {

// The logistic function of one value; exp(-x) overflowing to inf for very
// negative x still gives the right limit, 0.
template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// out[N] = sigmoid(inp[N]). Instantiated for float and double.
template <typename T>
void sigmoid_forward(T* out, const T* inp, std::int64_t n);

// dinp[N] = dout * out * (1 - out), with out the forward's output.
template <typename T>
void sigmoid_backward(T* dinp, const T* dout, const T* out, std::int64_t n);

// out[N,C] = softmax of each row of inp[N,C] (max-subtracted, so stable).
template <typename T>
void softmax_forward(T* out, const T* inp, std::int64_t n, std::int64_t c);

// dinp[N,C] = out * (dout - sum(dout * out)) per row, with out the forward's output.
template <typename T>
void softmax_backward(T* dinp, const T* dout, const T* out, std::int64_t n, std::int64_t c);

}  // namespace moebench::ops::cpu
