#pragma once
// Megatron's --split "99,1,0": train / validation / test shares of one
// corpus, turned into contiguous ranges of its sequences.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moebench::data {

enum class DataSplit { Train = 0, Valid = 1, Test = 2 };
std::string data_split_name(DataSplit split);  // "train", "valid", "test"

// [begin, end) as fractions of the corpus.
struct SplitBookends {
  double begin = 0;
  double end = 0;
};

// Megatron's parse: the numbers in the string (missing ones are 0), each >= 0,
// divided by their sum; then the cumulative bookends. A split of zero width
// is absent. "99,1,0" -> [0, 0.99), [0.99, 1.0), absent.
std::array<std::optional<SplitBookends>, 3> parse_split(std::string_view text);

// The sequences [begin, end) a split takes from a corpus of `count`:
// round(fraction x count), rounding halves to even as Python's round() does.
struct SequenceRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};
SequenceRange split_sequences(const SplitBookends& bookends, int64_t count);

}  // namespace moebench::data
