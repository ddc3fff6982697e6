#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "moebench/core/error.h"
#include "moebench/data/hf_tokenizer.h"
#include "moebench/data/null_tokenizer.h"
#include "moebench/data/sentencepiece_tokenizer.h"
#include "moebench/data/tokenizer.h"

namespace moebench::data {
namespace {

const std::filesystem::path kSource = MOEBENCH_SOURCE_DIR;
const std::filesystem::path kFixtures = kSource / "tests/fixtures/tokenizers";

std::string read_text(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

std::string format_ids(const std::vector<int64_t>& ids) {
  std::string text = "[";
  for (size_t i = 0; i < ids.size(); ++i) text += (i ? "," : "") + std::to_string(ids[i]);
  return text + "]";
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// ---------------------------------------------------------------- NullTokenizer

TEST(DataNullTokenizer, ParsesWhitespaceSeparatedIdsAndAddsOneEod) {
  const NullTokenizer tokenizer(100);
  EXPECT_EQ(tokenizer.encode(" 5 17\t99\n0  "), (std::vector<int64_t>{5, 17, 99, 0}));
  EXPECT_EQ(tokenizer.encode(""), std::vector<int64_t>{});
  EXPECT_EQ(tokenizer.vocab_size(), 101);
  EXPECT_EQ(tokenizer.eod(), 100);
  EXPECT_EQ(tokenizer.encode("100"), std::vector<int64_t>{100});
  const std::vector<int64_t> ids{3, 1, 4};
  EXPECT_EQ(tokenizer.decode(ids), "3 1 4");
}

TEST(DataNullTokenizer, RejectsWordsThatAreNotIdsOfTheVocabulary) {
  const NullTokenizer tokenizer(10);
  EXPECT_NE(error_of([&] { tokenizer.encode("1 two 3"); }).find("'two'"), std::string::npos);
  EXPECT_NE(error_of([&] { tokenizer.encode("11"); }).find("[0, 11)"), std::string::npos);
  EXPECT_THROW(tokenizer.encode("-1"), Error);
  EXPECT_THROW(NullTokenizer(0), Error);
}

// ---------------------------------------------------------------- make_tokenizer

TEST(DataTokenizerFactory, BuildsEachTypeAndNamesTheAllowedOnesOtherwise) {
  EXPECT_EQ(make_tokenizer({"NullTokenizer", "", 50})->vocab_size(), 51);
  const std::string unknown = error_of([] { make_tokenizer({"GPT2BPETokenizer", "", 0}); });
  for (const char* name : {"'GPT2BPETokenizer'", "HuggingFaceTokenizer", "Llama2Tokenizer", "NullTokenizer"}) {
    EXPECT_NE(unknown.find(name), std::string::npos) << unknown;
  }
  const std::string missing = error_of([] { make_tokenizer({"HuggingFaceTokenizer", "/no/such/tokenizer.json", 0}); });
  EXPECT_NE(missing.find("/no/such/tokenizer.json"), std::string::npos) << missing;
  EXPECT_NE(error_of([] { make_tokenizer({"Llama2Tokenizer", "", 0}); }).find("--tokenizer-model"), std::string::npos);
  const auto llama = make_tokenizer({"Llama2Tokenizer", (kFixtures / "sentencepiece/tiny.model").string(), 0});
  EXPECT_EQ(llama->vocab_size(), 600);
  // A directory stands for the tokenizer.json inside it.
  EXPECT_EQ(make_tokenizer({"HuggingFaceTokenizer", (kFixtures / "llama2").string(), 0})->eod(), 2);
}

// ---------------------------------------------------------------- HuggingFaceTokenizer

// Each tokenizer.json is parsed once for all tests (Qwen3's is 11 MB).
const HuggingFaceTokenizer& reference_tokenizer(const std::string& name) {
  static std::map<std::string, std::unique_ptr<HuggingFaceTokenizer>> loaded;
  auto& tokenizer = loaded[name];
  if (!tokenizer) tokenizer = std::make_unique<HuggingFaceTokenizer>(kFixtures / name);
  return *tokenizer;
}

struct ReferenceCase {
  std::string name;
  int64_t vocab_size;
  int64_t eod;
  std::optional<int64_t> bos;  // from tokenizer.json's post_processor
  // Metaspace tokenizers (Llama) write spaces as "▁" and prepend one to the
  // text after an added token, so text with "▁" or added tokens does not come
  // back byte for byte.
  bool metaspace;
};

void PrintTo(const ReferenceCase& reference, std::ostream* out) { *out << reference.name; }

bool round_trips(const std::string& line, bool metaspace) {
  return !metaspace || line.find("\u2581") == std::string::npos;
}

class DataHuggingFaceTokenizer : public testing::TestWithParam<ReferenceCase> {};

TEST_P(DataHuggingFaceTokenizer, MatchesTransformersJsOnEveryCorpusLine) {
  const HuggingFaceTokenizer& tokenizer = reference_tokenizer(GetParam().name);
  const auto expected = nlohmann::json::parse(read_text(kFixtures / (GetParam().name + ".expected.json")));
  const std::string corpus = read_text(kSource / "tests/tokenizer_reference/corpus.txt");
  const std::vector<std::string> lines = split_lines(corpus);
  ASSERT_EQ(expected.at("lines").size(), lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto want = expected.at("lines")[i].get<std::vector<int64_t>>();
    const std::vector<int64_t> got = tokenizer.encode(lines[i]);
    ASSERT_EQ(got, want) << "line " << i + 1 << ": " << lines[i] << "\n  ours:      " << format_ids(got)
                         << "\n  reference: " << format_ids(want);
  }
  EXPECT_EQ(tokenizer.encode(corpus), expected.at("whole_corpus").get<std::vector<int64_t>>());
}

TEST_P(DataHuggingFaceTokenizer, DecodeRoundTripsTheCorpus) {
  const HuggingFaceTokenizer& tokenizer = reference_tokenizer(GetParam().name);
  for (const std::string& line : split_lines(read_text(kSource / "tests/tokenizer_reference/corpus.txt"))) {
    const std::vector<int64_t> ids = tokenizer.encode(line);
    const bool has_added_token =
        std::any_of(ids.begin(), ids.end(), [&](int64_t id) { return tokenizer.added_tokens().find(id) != nullptr; });
    if (!round_trips(line, GetParam().metaspace) || (has_added_token && GetParam().metaspace)) continue;
    EXPECT_EQ(tokenizer.decode(ids), line) << "ids " << format_ids(ids);
  }
}

TEST_P(DataHuggingFaceTokenizer, ReadsVocabularySizeEodAndBosFromTheFiles) {
  const HuggingFaceTokenizer& tokenizer = reference_tokenizer(GetParam().name);
  EXPECT_EQ(tokenizer.vocab_size(), GetParam().vocab_size);
  EXPECT_EQ(tokenizer.eod(), GetParam().eod);
  EXPECT_EQ(tokenizer.bos(), GetParam().bos);
}

// A tiny hand-written tokenizer.json for the steps the three references do not
// use: the Metaspace pre-tokenizer and decoder, byte fallback next to fused
// unknowns, and an lstrip added token.
class DataHuggingFaceTokenizerSteps : public testing::Test {
 protected:
  std::filesystem::path write_tokenizer(const nlohmann::json& json) {
    const auto directory = std::filesystem::temp_directory_path() /
                           ("moebench_tokenizer_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
                            "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(directory);
    std::ofstream(directory / "tokenizer.json") << json.dump();
    directories_.push_back(directory);
    return directory;
  }
  void TearDown() override {
    for (const auto& directory : directories_) std::filesystem::remove_all(directory);
  }
  static nlohmann::json metaspace_tokenizer() {
    return nlohmann::json::parse(R"({
      "added_tokens": [{"id": 10, "content": "<mask>", "special": true, "lstrip": true, "rstrip": false,
                        "normalized": false, "single_word": false}],
      "normalizer": null,
      "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": true},
      "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": true},
      "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
                "vocab": {"<unk>": 0, "\u2581": 1, "a": 2, "b": 3, "\u2581a": 4, "\u2581ab": 5, "ab": 6, "<0x21>": 7},
                "merges": [["\u2581", "a"], ["\u2581a", "b"], "a b"]}
    })");
  }

 private:
  std::vector<std::filesystem::path> directories_;
};

TEST_F(DataHuggingFaceTokenizerSteps, MetaspaceByteFallbackFusedUnknownsAndLstrip) {
  const HuggingFaceTokenizer tokenizer(write_tokenizer(metaspace_tokenizer()));
  EXPECT_EQ(tokenizer.encode("ab ab"), (std::vector<int64_t>{5, 5}));
  // "!" falls back to its byte token; "x" and "y" have none and fuse into one <unk>.
  EXPECT_EQ(tokenizer.encode("ab! xy"), (std::vector<int64_t>{5, 7, 1, 0}));
  // <mask> swallows the space before it; the text after it gets no "▁" (prepend_scheme first).
  EXPECT_EQ(tokenizer.encode("ab <mask>ab"), (std::vector<int64_t>{5, 10, 6}));
  const std::vector<int64_t> ids{5, 5, 7};
  EXPECT_EQ(tokenizer.decode(ids), "ab ab<0x21>");
  EXPECT_EQ(tokenizer.eod(), std::nullopt);
  EXPECT_EQ(tokenizer.vocab_size(), 11);
}

TEST_F(DataHuggingFaceTokenizerSteps, BosIsTheSpecialTokenLeadingTheSingleTemplate) {
  const auto bos_of = [&](const nlohmann::json& post_processor) {
    nlohmann::json json = metaspace_tokenizer();
    json["post_processor"] = post_processor;
    return HuggingFaceTokenizer(write_tokenizer(json)).bos();
  };
  const auto template_of = [](const char* single) {
    nlohmann::json processor = nlohmann::json::parse(R"({"type": "TemplateProcessing", "pair": [],
        "special_tokens": {"<mask>": {"id": "<mask>", "ids": [10], "tokens": ["<mask>"]}}})");
    processor["single"] = nlohmann::json::parse(single);
    return processor;
  };
  const nlohmann::json leading = template_of(R"([{"SpecialToken": {"id": "<mask>", "type_id": 0}},
                                                 {"Sequence": {"id": "A", "type_id": 0}}])");
  EXPECT_EQ(bos_of(leading), 10);
  EXPECT_EQ(bos_of({{"type", "Sequence"}, {"processors", {{{"type", "ByteLevel"}}, leading}}}), 10);
  // A template that only appends, and post-processors other than templates, add no BOS.
  EXPECT_EQ(bos_of(template_of(R"([{"Sequence": {"id": "A", "type_id": 0}},
                                   {"SpecialToken": {"id": "<mask>", "type_id": 0}}])")),
            std::nullopt);
  EXPECT_EQ(bos_of(nlohmann::json::parse(R"({"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0]})")),
            std::nullopt);
  EXPECT_EQ(bos_of(nullptr), std::nullopt);
}

TEST_F(DataHuggingFaceTokenizerSteps, UnsupportedStepsAreNamed) {
  nlohmann::json json = metaspace_tokenizer();
  json["pre_tokenizer"] = {{"type", "Whitespace"}};
  const std::string pre_tokenizer = error_of([&] { HuggingFaceTokenizer{write_tokenizer(json)}; });
  EXPECT_NE(pre_tokenizer.find("'Whitespace'"), std::string::npos) << pre_tokenizer;
  json = metaspace_tokenizer();
  json["model"]["type"] = "Unigram";
  const std::string model = error_of([&] { HuggingFaceTokenizer{write_tokenizer(json)}; });
  EXPECT_NE(model.find("Unigram"), std::string::npos) << model;
}

INSTANTIATE_TEST_SUITE_P(References, DataHuggingFaceTokenizer,
                         // deepseek_v3's post_processor is ByteLevel only, so it adds no BOS.
                         testing::Values(ReferenceCase{"qwen3", 151669, 151645, std::nullopt, false},
                                         ReferenceCase{"deepseek_v3", 128815, 1, std::nullopt, false},
                                         ReferenceCase{"llama2", 32000, 2, 1, true}),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------- SentencePiece (Llama2Tokenizer)

TEST(DataSentencePieceTokenizer, MatchesSpmEncodeOnEveryCorpusLine) {
  const SentencePieceTokenizer tokenizer(kFixtures / "sentencepiece/tiny.model");
  const std::vector<std::string> lines = split_lines(read_text(kSource / "tests/tokenizer_reference/corpus.txt"));
  const std::vector<std::string> expected = split_lines(read_text(kFixtures / "sentencepiece/tiny.expected_ids.txt"));
  ASSERT_EQ(expected.size(), lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    std::vector<int64_t> want;
    std::stringstream ids(expected[i]);
    for (int64_t id = 0; ids >> id;) want.push_back(id);
    const std::vector<int64_t> got = tokenizer.encode(lines[i]);
    ASSERT_EQ(got, want) << "line " << i + 1 << ": " << lines[i];
    if (round_trips(lines[i], /*metaspace=*/true)) {
      EXPECT_EQ(tokenizer.decode(got), lines[i]);
    }
  }
  EXPECT_EQ(tokenizer.bos(), std::nullopt);  // Megatron-Core's SentencePiece tokenizer prepends none
  EXPECT_EQ(tokenizer.eod(), 2);
}

}  // namespace
}  // namespace moebench::data
