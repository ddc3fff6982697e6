#include "moebench/data/dataset_builder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "moebench/core/error.h"
#include "moebench/data/indexed_dataset.h"

namespace moebench::data {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Every token says where it came from: corpus_id x 100000 + document x 100 + position.
constexpr int64_t kCorpusStride = 100000;
constexpr int64_t kDocumentStride = 100;

fs::path write_corpus(const std::string& name, int64_t corpus_id, int documents, int length) {
  const fs::path directory = fs::temp_directory_path() / "moebench_data_dataset_builder";
  fs::create_directories(directory);
  const fs::path prefix = directory / name;
  IndexedDatasetBuilder builder(prefix, TokenDType::Int32);
  for (int d = 0; d < documents; ++d) {
    std::vector<int64_t> tokens;
    for (int t = 0; t < length; ++t) tokens.push_back(corpus_id * kCorpusStride + d * kDocumentStride + t);
    builder.add_item(tokens);
    builder.end_document();
  }
  builder.finalize();
  return prefix;
}

TrainingDataConfig config_for(std::vector<std::string> data_path, std::string split, SplitSampleCounts samples) {
  TrainingDataConfig config;
  config.data_path = std::move(data_path);
  config.split = std::move(split);
  config.dataset.seq_length = 16;
  config.dataset.seed = 1234;
  config.samples = samples;
  return config;
}

int64_t corpus_of(const GptSample& sample) { return sample.text.front() / kCorpusStride; }
int64_t document_of(int64_t token) { return token % kCorpusStride / kDocumentStride; }

TEST(DataDatasetBuilder, CountsSamplesAsMegatron) {
  // 10 iterations of GBS 4, evaluated after 5 and 10 (and Megatron's extra one): 3 x 2 x 4.
  const SplitSampleCounts counts = megatron_sample_counts(10, 0, 5, 2, 4);
  EXPECT_EQ(counts.train, 40);
  EXPECT_EQ(counts.valid, 24);
  EXPECT_EQ(megatron_sample_counts(10, 45, 5, 2, 4).train, 45);  // --train-samples wins
  EXPECT_EQ(megatron_sample_counts(10, 0, 0, 0, 4).valid, 0);    // no evaluation
  EXPECT_THAT([] { megatron_sample_counts(10, 0, 0, 2, 4); },
              ::testing::ThrowsMessage<Error>(HasSubstr("--eval-interval 0")));
}

TEST(DataDatasetBuilder, SplitsOneCorpusIntoTrainAndValidation) {
  const fs::path prefix = write_corpus("single", 0, 100, 20);
  const TrainingDatasets datasets = build_training_datasets(config_for({prefix.string()}, "90,10,0", {200, 40}));
  ASSERT_TRUE(datasets.train && datasets.validation);
  EXPECT_GE(datasets.train->size(), 200);
  EXPECT_GE(datasets.validation->size(), 40);
  for (int64_t i = 0; i < 200; ++i)
    for (const int64_t token : datasets.train->sample(i).text) ASSERT_LT(document_of(token), 90);
  for (int64_t i = 0; i < 40; ++i)
    for (const int64_t token : datasets.validation->sample(i).text) ASSERT_GE(document_of(token), 90);
}

TEST(DataDatasetBuilder, BlendsByTheGivenWeights) {
  const fs::path a = write_corpus("weighted_a", 1, 50, 20);
  const fs::path b = write_corpus("weighted_b", 2, 50, 20);
  const TrainingDatasets datasets =
      build_training_datasets(config_for({"0.25", a.string(), "0.75", b.string()}, "99,1,0", {400, 0}));
  EXPECT_EQ(datasets.train->size(), 400);
  EXPECT_FALSE(datasets.validation);  // no validation samples asked for
  int64_t from_a = 0;
  for (int64_t i = 0; i < 400; ++i) from_a += corpus_of(datasets.train->sample(i)) == 1;
  EXPECT_NEAR(double(from_a), 100.0, 1.0);
}

TEST(DataDatasetBuilder, WeighsUnweightedCorporaByTheirTokens) {
  const fs::path big = write_corpus("size_big", 1, 90, 20);
  const fs::path small = write_corpus("size_small", 2, 30, 20);
  const TrainingDatasets datasets =
      build_training_datasets(config_for({big.string(), small.string()}, "100,0,0", {400, 40}));
  EXPECT_FALSE(datasets.validation);  // the split gives validation no share
  int64_t from_big = 0;
  for (int64_t i = 0; i < 400; ++i) from_big += corpus_of(datasets.train->sample(i)) == 1;
  EXPECT_NEAR(double(from_big), 300.0, 1.0);
}

TEST(DataDatasetBuilder, StacksSamplesIntoMicrobatches) {
  const fs::path prefix = write_corpus("microbatch", 0, 40, 20);
  const TrainingDatasets datasets = build_training_datasets(config_for({prefix.string()}, "99,1,0", {12, 0}));
  const Microbatch batch = datasets.train->microbatch(4, 3);
  EXPECT_THAT(batch.tokens.shape(), ElementsAre(3, 16));
  EXPECT_THAT(batch.labels.shape(), ElementsAre(3, 16));
  EXPECT_THAT(batch.loss_mask.shape(), ElementsAre(3, 16));
  EXPECT_EQ(batch.loss_mask.dtype(), DType::F32);
  for (int64_t b = 0; b < 3; ++b) {
    const GptSample sample = datasets.train->sample(4 + b);
    for (int64_t s = 0; s < 16; ++s) {
      EXPECT_EQ(batch.tokens.data<int64_t>()[b * 16 + s], sample.text[size_t(s)]);
      EXPECT_EQ(batch.labels.data<int64_t>()[b * 16 + s], sample.text[size_t(s + 1)]);
      EXPECT_EQ(batch.loss_mask.data<float>()[b * 16 + s], 1.0f);
    }
  }
}

TEST(DataDatasetBuilder, RefusesASplitWithoutTraining) {
  const fs::path prefix = write_corpus("no_train", 0, 10, 20);
  EXPECT_THAT([&] { build_training_datasets(config_for({prefix.string()}, "0,1,0", {10, 10})); },
              ::testing::ThrowsMessage<Error>(HasSubstr("gives training no share")));
}

TEST(DataDatasetBuilder, NamesAMissingCorpus) {
  const std::string missing = (fs::temp_directory_path() / "moebench_data_dataset_builder" / "absent").string();
  EXPECT_THAT([&] { build_training_datasets(config_for({missing}, "99,1,0", {10, 10})); },
              ::testing::ThrowsMessage<Error>(HasSubstr(missing)));
}

}  // namespace
}  // namespace moebench::data
