#include "moebench/data/gpt_dataset.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "moebench/core/error.h"
#include "moebench/data/blended_dataset.h"
#include "moebench/data/dataset_split.h"

namespace moebench::data {
namespace {

namespace fs = std::filesystem;

fs::path fresh_directory(const std::string& name) {
  const fs::path directory = fs::temp_directory_path() / ("moebench_data_gpt_" + name);
  fs::remove_all(directory);
  fs::create_directories(directory);
  return directory;
}

GptDatasetConfig make_config(int64_t seq_length, uint64_t seed, fs::path cache_directory = {}) {
  GptDatasetConfig config;
  config.seq_length = seq_length;
  config.seed = seed;
  config.cache_directory = std::move(cache_directory);
  return config;
}

// Documents of the given lengths, one sequence each; token values are
// 1000 x document + position, so every token says where it came from.
std::shared_ptr<const IndexedDatasetReader> write_corpus(const fs::path& prefix, const std::vector<int>& lengths) {
  IndexedDatasetBuilder builder(prefix, TokenDType::Int32);
  for (size_t d = 0; d < lengths.size(); ++d) {
    std::vector<int64_t> tokens;
    for (int t = 0; t < lengths[d]; ++t) tokens.push_back(int64_t(1000 * d) + t);
    builder.add_item(tokens);
    builder.end_document();
  }
  builder.finalize();
  return std::make_shared<const IndexedDatasetReader>(prefix);
}

TEST(DataDatasetSplit, ParsesAndRoundsAsMegatron) {
  const auto split = parse_split("99,1,0");
  ASSERT_TRUE(split[0] && split[1]);
  EXPECT_FALSE(split[2]);
  EXPECT_EQ(split_sequences(*split[0], 1000).begin, 0);
  EXPECT_EQ(split_sequences(*split[0], 1000).end, 990);
  EXPECT_EQ(split_sequences(*split[1], 1000).begin, 990);
  EXPECT_EQ(split_sequences(*split[1], 1000).end, 1000);

  // Thirds of 10: round(3.33) = 3, round(6.67) = 7.
  const auto thirds = parse_split("1,1,1");
  EXPECT_EQ(split_sequences(*thirds[0], 10).end, 3);
  EXPECT_EQ(split_sequences(*thirds[1], 10).begin, 3);
  EXPECT_EQ(split_sequences(*thirds[1], 10).end, 7);
  EXPECT_EQ(split_sequences(*thirds[2], 10).end, 10);

  // Missing parts are 0; halves round to even like Python's round().
  const auto halves = parse_split("1 1");
  EXPECT_FALSE(halves[2]);
  EXPECT_EQ(split_sequences(*halves[0], 5).end, 2);   // 2.5 -> 2
  EXPECT_EQ(split_sequences(*halves[0], 7).end, 4);   // 3.5 -> 4
  EXPECT_THROW(parse_split("0,0,0"), Error);
  EXPECT_THROW(parse_split("1,1,1,1"), Error);
}

TEST(DataGptDataset, SamplesCrossDocumentsAndCoverTheTokenStream) {
  const std::vector<int> lengths = {5, 1, 7, 3, 9, 2};  // 27 tokens
  const auto corpus = write_corpus(fresh_directory("cover") / "corpus", lengths);
  const GptDatasetConfig config = make_config(4, 7);
  const GptDataset dataset(corpus, DataSplit::Train, {0, 6}, std::nullopt, config);
  const GptIndices& indices = dataset.indices();
  EXPECT_EQ(indices.epochs, 1);
  EXPECT_EQ(dataset.size(), (27 - 1) / 4);

  // The token stream in document-index order.
  std::vector<int64_t> stream;
  for (const int64_t sequence : indices.document_index) {
    const std::vector<int64_t> tokens = corpus->tokens(sequence);
    stream.insert(stream.end(), tokens.begin(), tokens.end());
  }
  std::vector<int64_t> order = indices.shuffle_index;
  std::sort(order.begin(), order.end());
  for (int64_t s = 0; s < dataset.size(); ++s) EXPECT_EQ(order[size_t(s)], s);  // a permutation

  // Unshuffled sample s is stream[4s .. 4s + 4]: neighbours share one token.
  for (int64_t i = 0; i < dataset.size(); ++i) {
    const int64_t s = indices.shuffle_index[size_t(i)];
    const GptSample sample = dataset.sample(i);
    ASSERT_EQ(sample.text.size(), 5u);
    EXPECT_EQ(sample.text, std::vector<int64_t>(stream.begin() + 4 * s, stream.begin() + 4 * s + 5)) << i;
    EXPECT_EQ(sample.tokens().size(), 4u);
    EXPECT_EQ(sample.labels()[0], sample.text[1]);
    EXPECT_EQ(sample.loss_mask, std::vector<float>(4, 1.0f));
  }
  EXPECT_THROW(dataset.sample(dataset.size()), Error);
}

TEST(DataGptDataset, EpochsRepeatTheSplitsSequences) {
  const auto corpus = write_corpus(fresh_directory("epochs") / "corpus", {4, 6, 5, 3, 2});
  const GptDatasetConfig config = make_config(3, 1);
  // Sequences 1..3 hold 14 tokens; 10 samples need 31, so 3 epochs.
  const GptDataset dataset(corpus, DataSplit::Valid, {1, 4}, 10, config);
  EXPECT_EQ(dataset.indices().epochs, 3);
  EXPECT_GE(dataset.size(), 10);
  std::map<int64_t, int> uses;
  for (const int64_t sequence : dataset.indices().document_index) ++uses[sequence];
  EXPECT_EQ(uses, (std::map<int64_t, int>{{1, 3}, {2, 3}, {3, 3}}));
  for (int64_t i = 0; i < dataset.size(); ++i)
    for (const int64_t token : dataset.sample(i).text) EXPECT_TRUE(token / 1000 >= 1 && token / 1000 <= 3);
}

TEST(DataGptDataset, AShortFinalEpochIsShuffledSeparately) {
  const auto corpus = write_corpus(fresh_directory("final_epoch") / "corpus", {10, 10, 10, 11});  // 41 tokens
  const GptDatasetConfig config = make_config(4, 3);
  // 11 samples need 45 tokens: 2 epochs, the second contributing 1 sample of 10.
  const GptDataset dataset(corpus, DataSplit::Train, {0, 4}, 11, config);
  ASSERT_EQ(dataset.indices().epochs, 2);
  const std::vector<int64_t>& shuffle = dataset.indices().shuffle_index;
  const int64_t first_epoch = (41 - 1) / 4;
  for (int64_t i = 0; i < first_epoch; ++i) EXPECT_LT(shuffle[size_t(i)], first_epoch);
  for (size_t i = size_t(first_epoch); i < shuffle.size(); ++i) EXPECT_GE(shuffle[i], first_epoch);
}

TEST(DataGptDataset, MasksTheLossOnEndOfDocumentWhenAsked) {
  GptDatasetConfig config = make_config(4, 0);
  config.eod_mask_loss = true;
  config.eod_token = 2;
  const std::vector<int64_t> tokens = {5, 2, 7, 2};
  EXPECT_EQ(gpt_loss_mask(tokens, config), (std::vector<float>{1, 0, 1, 0}));
  config.eod_mask_loss = false;
  EXPECT_EQ(gpt_loss_mask(tokens, config), (std::vector<float>{1, 1, 1, 1}));
}

TEST(DataGptDataset, CachedIndicesAreReusedAndRebuiltWhenInputsChange) {
  const fs::path directory = fresh_directory("cache");
  const auto corpus = write_corpus(directory / "corpus", {8, 3, 12, 5});
  GptDatasetConfig config = make_config(4, 11, directory / "cache");

  const GptDataset first(corpus, DataSplit::Train, {0, 4}, 20, config);
  EXPECT_TRUE(first.built_anew());
  ASSERT_EQ(std::distance(fs::directory_iterator(config.cache_directory), fs::directory_iterator()), 1);
  const fs::path entry = fs::directory_iterator(config.cache_directory)->path();
  const auto written = fs::last_write_time(entry);

  const GptDataset second(corpus, DataSplit::Train, {0, 4}, 20, config);
  EXPECT_FALSE(second.built_anew());
  EXPECT_EQ(fs::last_write_time(entry), written);
  EXPECT_EQ(second.indices().document_index, first.indices().document_index);
  EXPECT_EQ(second.indices().sample_index, first.indices().sample_index);
  EXPECT_EQ(second.indices().shuffle_index, first.indices().shuffle_index);
  EXPECT_EQ(second.indices().epochs, first.indices().epochs);
  EXPECT_EQ(second.sample(3).text, first.sample(3).text);

  config.seed = 12;
  const GptDataset reseeded(corpus, DataSplit::Train, {0, 4}, 20, config);
  EXPECT_TRUE(reseeded.built_anew());
  EXPECT_NE(reseeded.indices().shuffle_index, first.indices().shuffle_index);
  EXPECT_EQ(std::distance(fs::directory_iterator(config.cache_directory), fs::directory_iterator()), 2);
}

TEST(DataBlendedDataset, SharesTrackTheWeightsWithinOneSample) {
  for (const std::vector<double>& weights :
       {std::vector<double>{0.3, 0.7}, std::vector<double>{0.5, 0.25, 0.25}, std::vector<double>{0.1, 0.6, 0.3}}) {
    const BlendingIndices indices = build_blending_indices(weights, 1000);
    std::vector<int64_t> drawn(weights.size(), 0);
    for (size_t n = 0; n < indices.dataset_index.size(); ++n) {
      const auto d = size_t(indices.dataset_index[n]);
      EXPECT_EQ(indices.dataset_sample_index[n], drawn[d]);  // each dataset read in order
      ++drawn[d];
      for (size_t k = 0; k < weights.size(); ++k)
        EXPECT_LE(std::abs(double(drawn[k]) - weights[k] * double(n + 1)), 1.0) << "dataset " << k << " at " << n;
    }
  }
}

TEST(DataBlendedDataset, ParsesWeightsAndSizesTheDatasetsWithASurplus) {
  const DataBlend weighted = parse_data_blend({"0.3", "pathA", "0.7", "pathB"});
  EXPECT_EQ(weighted.prefixes, (std::vector<std::string>{"pathA", "pathB"}));
  EXPECT_EQ(weighted.weights, (std::vector<double>{0.3, 0.7}));
  const DataBlend plain = parse_data_blend({"pathA", "pathB"});
  EXPECT_EQ(plain.prefixes, (std::vector<std::string>{"pathA", "pathB"}));
  EXPECT_TRUE(plain.weights.empty());
  EXPECT_EQ(normalize_weights({3, 7}), (std::vector<double>{0.3, 0.7}));
  // ceil(ceil(1000 x 0.3) x 1.005) = 302; ceil(ceil(1000 x 0.7) x 1.005) = 704.
  EXPECT_EQ(samples_per_dataset({0.3, 0.7}, 1000, kMidLevelDatasetSurplus), (std::vector<int64_t>{302, 704}));
}

TEST(DataBlendedDataset, DrawsSamplesFromEachDatasetByWeight) {
  const fs::path directory = fresh_directory("blend");
  const auto a = write_corpus(directory / "a", {20, 30, 25});
  const auto b = write_corpus(directory / "b", {40, 15});
  const GptDatasetConfig config = make_config(8, 5, directory / "cache");
  const std::vector<double> weights = normalize_weights({1, 3});
  const int64_t size = 40;
  const std::vector<int64_t> per_dataset = samples_per_dataset(weights, size, kMidLevelDatasetSurplus);
  std::vector<std::shared_ptr<const GptDataset>> datasets = {
      std::make_shared<const GptDataset>(a, DataSplit::Train, SequenceRange{0, 3}, per_dataset[0], config),
      std::make_shared<const GptDataset>(b, DataSplit::Train, SequenceRange{0, 2}, per_dataset[1], config)};
  const IndexCache cache(config.cache_directory);
  const BlendedDataset blend(datasets, {1, 3}, size, cache);
  EXPECT_TRUE(blend.built_anew());
  ASSERT_EQ(blend.size(), size);
  for (int64_t i = 0; i < size; ++i) {
    const auto d = size_t(blend.indices().dataset_index[size_t(i)]);
    EXPECT_EQ(blend.sample(i).text, datasets[d]->sample(blend.indices().dataset_sample_index[size_t(i)]).text);
  }
  const BlendedDataset again(datasets, {1, 3}, size, cache);
  EXPECT_FALSE(again.built_anew());
  EXPECT_EQ(again.indices().dataset_index, blend.indices().dataset_index);
  EXPECT_THROW(BlendedDataset(datasets, {1, 3}, 10 * size, IndexCache("")), Error);
}

}  // namespace
}  // namespace moebench::data
