#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "finite_difference.h"
#include "moebench/core/error.h"
#include "moebench/ops/embedding.h"

namespace moebench::ops::cpu {
namespace {

using moebench::testing::max_relative_error;
using moebench::testing::numeric_gradient;
using moebench::testing::uniform_vector;

TEST(OpsEmbedding, ForwardCopiesTheRowsOfTheIds) {
  const std::vector<float> table = {0, 1, 10, 11, 20, 21};  // [3, 2]
  const std::vector<std::int64_t> ids = {2, 0, 2};
  std::vector<float> out(6);
  embedding_forward(out.data(), ids.data(), table.data(), 3, 3, 2);
  EXPECT_EQ(out, (std::vector<float>{20, 21, 0, 1, 20, 21}));
}

TEST(OpsEmbedding, BackwardSumsRepeatedIdsOntoTheTableGradient) {
  const std::vector<std::int64_t> ids = {2, 0, 2};
  const std::vector<float> dout = {1, 2, 3, 4, 5, 6};
  std::vector<float> dtable(6, 1.0f);  // accumulated onto
  embedding_backward(dtable.data(), dout.data(), ids.data(), 3, 3, 2);
  EXPECT_EQ(dtable, (std::vector<float>{4, 5, 1, 1, 7, 9}));
}

TEST(OpsEmbedding, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(19);
  const std::int64_t n = 7, vocab = 5, c = 3;
  std::vector<double> table = uniform_vector(rng, vocab * c);
  const std::vector<std::int64_t> ids = {4, 1, 1, 0, 4, 2, 1};  // row 3 unused
  const std::vector<double> dout = uniform_vector(rng, n * c);
  auto loss = [&](const std::vector<double>&) {
    std::vector<double> out(n * c);
    embedding_forward(out.data(), ids.data(), table.data(), n, vocab, c);
    return std::inner_product(out.begin(), out.end(), dout.begin(), 0.0);
  };
  std::vector<double> dtable(table.size(), 0.0);
  embedding_backward(dtable.data(), dout.data(), ids.data(), n, vocab, c);
  EXPECT_LT(max_relative_error(dtable, numeric_gradient(loss, table)), 1e-8);
}

TEST(OpsEmbedding, IdsOutsideTheVocabularyThrowNamingTheId) {
  const std::vector<float> table(6, 0.0f);
  std::vector<float> buffer(6);
  for (std::int64_t bad_id : {std::int64_t{3}, std::int64_t{-1}}) {
    const std::vector<std::int64_t> ids = {0, bad_id};
    try {
      embedding_forward(buffer.data(), ids.data(), table.data(), 2, 3, 2);
      FAIL() << "id " << bad_id << " was accepted";
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find("token id " + std::to_string(bad_id)),
                std::string::npos)
          << error.what();
    }
    EXPECT_THROW(embedding_backward(buffer.data(), buffer.data(), ids.data(), 2, 3, 2), Error);
  }
}

}  // namespace
}  // namespace moebench::ops::cpu
