#include "moebench/data/dataset_split.h"

#include <cmath>
#include <vector>

#include "moebench/core/error.h"

namespace moebench::data {

std::string data_split_name(DataSplit split) {
  switch (split) {
    case DataSplit::Train: return "train";
    case DataSplit::Valid: return "valid";
    case DataSplit::Test: return "test";
  }
  return "unknown";
}

std::array<std::optional<SplitBookends>, 3> parse_split(std::string_view text) {
  const std::string input(text);
  // As Megatron, every run of digits and dots is a number; all else separates.
  std::vector<double> weights;
  const auto is_number_char = [](char c) { return c == '.' || (c >= '0' && c <= '9'); };
  for (size_t i = 0; i < input.size();) {
    if (!is_number_char(input[i])) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < input.size() && is_number_char(input[end])) ++end;
    const std::string word = input.substr(i, end - i);
    try {
      weights.push_back(std::stod(word));
    } catch (const std::exception&) {
      throw Error("--split '" + input + "': '" + word + "' is not a number; write e.g. 99,1,0");
    }
    i = end;
  }
  if (weights.size() > 3)
    throw Error("--split '" + input + "' has " + std::to_string(weights.size()) +
                " parts; give at most three (train,valid,test), e.g. 99,1,0");
  weights.resize(3, 0.0);
  double sum = 0;
  for (const double weight : weights) sum += weight;
  if (!(sum > 0)) throw Error("--split '" + input + "' gives every split weight 0; write e.g. 99,1,0");

  std::array<std::optional<SplitBookends>, 3> bookends;
  double begin = 0;
  for (size_t i = 0; i < 3; ++i) {
    const double end = begin + weights[i] / sum;
    if (end > begin) bookends[i] = SplitBookends{begin, end};
    begin = end;
  }
  return bookends;
}

SequenceRange split_sequences(const SplitBookends& bookends, int64_t count) {
  // nearbyint in the default rounding mode rounds halves to even.
  return {int64_t(std::nearbyint(bookends.begin * double(count))),
          int64_t(std::nearbyint(bookends.end * double(count)))};
}

}  // namespace moebench::data
