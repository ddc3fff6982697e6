#pragma once
// Gradient checks by central finite differences, in double.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <random>
#include <vector>

namespace moebench::testing {

// n values drawn uniformly from [low, high): the random inputs of a check.
inline std::vector<double> uniform_vector(std::mt19937_64& rng, std::size_t n, double low = -1.0,
                                          double high = 1.0) {
  std::uniform_real_distribution<double> distribution(low, high);
  std::vector<double> values(n);
  for (double& value : values) value = distribution(rng);
  return values;
}

// d loss / d x[i] ~= (loss(x + h e_i) - loss(x - h e_i)) / 2h for every i.
// `loss` is called as loss(x) with one element of x nudged; x is restored.
template <typename Loss>
std::vector<double> numeric_gradient(Loss&& loss, std::vector<double>& x, double h = 1e-5) {
  std::vector<double> gradient(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double plus = loss(x);
    x[i] = saved - h;
    const double minus = loss(x);
    x[i] = saved;
    gradient[i] = (plus - minus) / (2 * h);
  }
  return gradient;
}

// max |actual - expected| / max |expected|: one relative error for a whole
// gradient, so entries near zero do not dominate it.
inline double max_relative_error(const std::vector<double>& actual,
                                 const std::vector<double>& expected) {
  double max_difference = 0;
  double max_magnitude = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    max_difference = std::max(max_difference, std::abs(actual[i] - expected[i]));
    max_magnitude = std::max(max_magnitude, std::abs(expected[i]));
  }
  return max_magnitude > 0 ? max_difference / max_magnitude : max_difference;
}

}  // namespace moebench::testing
