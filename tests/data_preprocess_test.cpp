#include "moebench/data/preprocess.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "moebench/core/error.h"
#include "moebench/data/indexed_dataset.h"

namespace moebench::data {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// One token per byte (ids 0-255), EOD 256 and BOS 257, so expected ids are the text's bytes.
class ByteTokenizer final : public Tokenizer {
 public:
  explicit ByteTokenizer(bool has_eod = true, bool has_bos = false) : has_eod_(has_eod), has_bos_(has_bos) {}
  std::vector<int64_t> encode(std::string_view text) const override {
    return {reinterpret_cast<const unsigned char*>(text.data()),
            reinterpret_cast<const unsigned char*>(text.data()) + text.size()};
  }
  std::string decode(std::span<const int64_t> ids) const override { return {ids.begin(), ids.end()}; }
  int64_t vocab_size() const override { return 258; }
  std::optional<int64_t> eod() const override { return has_eod_ ? std::optional<int64_t>(256) : std::nullopt; }
  std::optional<int64_t> bos() const override { return has_bos_ ? std::optional<int64_t>(257) : std::nullopt; }

 private:
  bool has_eod_;
  bool has_bos_;
};

std::vector<int64_t> bytes_of(std::string_view text) { return ByteTokenizer().encode(text); }

fs::path fresh_directory(const std::string& name) {
  const fs::path directory = fs::temp_directory_path() / ("moebench_data_preprocess_" + name);
  fs::remove_all(directory);
  fs::create_directories(directory);
  return directory;
}

fs::path write_input(const fs::path& directory, const std::string& text) {
  const fs::path path = directory / "input.jsonl";
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

PreprocessOptions options_for(const fs::path& directory, const std::string& text) {
  PreprocessOptions options;
  options.input = write_input(directory, text);
  options.output_prefix = (directory / "corpus").string();
  return options;
}

std::string file_bytes(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

TEST(DataPreprocess, WritesOneSequencePerDocumentWithExactIds) {
  const fs::path directory = fresh_directory("exact");
  const PreprocessSummary summary =
      preprocess_jsonl(options_for(directory, "{\"text\": \"ab\"}\n{\"text\": \"\"}\n{\"text\": \"xyz\", \"id\": 7}\n"),
                       ByteTokenizer());
  ASSERT_THAT(summary.outputs, ElementsAre(directory / "corpus_text_document"));
  EXPECT_FALSE(summary.interrupted);
  EXPECT_EQ(summary.totals.documents, 3);
  EXPECT_EQ(summary.totals.tokens, 5);

  const IndexedDatasetReader corpus(summary.outputs[0]);
  EXPECT_EQ(corpus.dtype(), TokenDType::UInt16);  // a vocabulary of 258
  // The empty text is a document without sequences, as Megatron writes it.
  EXPECT_EQ(corpus.document_count(), 3);
  EXPECT_EQ(corpus.sequence_count(), 2);
  EXPECT_THAT((std::vector<int64_t>{corpus.document_index(0), corpus.document_index(1), corpus.document_index(2),
                                    corpus.document_index(3)}),
              ElementsAre(0, 1, 1, 2));
  EXPECT_EQ(corpus.tokens(0), bytes_of("ab"));
  EXPECT_EQ(corpus.tokens(1), bytes_of("xyz"));
}

TEST(DataPreprocess, AppendsEodToEveryNonEmptyDocument) {
  const fs::path directory = fresh_directory("eod");
  PreprocessOptions options = options_for(directory, "{\"text\": \"ab\"}\n{\"text\": \"\"}\n{\"text\": \"c\"}");
  options.append_eod = true;
  const PreprocessSummary summary = preprocess_jsonl(options, ByteTokenizer());
  const IndexedDatasetReader corpus(summary.outputs[0]);
  ASSERT_EQ(corpus.sequence_count(), 2);
  EXPECT_THAT(corpus.tokens(0), ElementsAre('a', 'b', 256));
  EXPECT_THAT(corpus.tokens(1), ElementsAre('c', 256));  // the last line has no newline
  EXPECT_EQ(summary.totals.tokens, 5);
}

TEST(DataPreprocess, AppendEodNeedsATokenizerWithOne) {
  const fs::path directory = fresh_directory("no_eod");
  PreprocessOptions options = options_for(directory, "{\"text\": \"ab\"}\n");
  options.append_eod = true;
  EXPECT_THAT([&] { preprocess_jsonl(options, ByteTokenizer(false)); },
              ::testing::ThrowsMessage<Error>(HasSubstr("--append-eod")));
}

TEST(DataPreprocess, ListOfSentencesGivesOneSequenceEach) {
  const fs::path directory = fresh_directory("sentences");
  PreprocessOptions options = options_for(directory, "{\"text\": [\"ab\", \"\", \"cde\"]}\n");
  options.append_eod = true;
  const IndexedDatasetReader corpus(preprocess_jsonl(options, ByteTokenizer()).outputs[0]);
  EXPECT_EQ(corpus.document_count(), 1);
  ASSERT_EQ(corpus.sequence_count(), 2);
  EXPECT_THAT(corpus.tokens(0), ElementsAre('a', 'b'));
  EXPECT_THAT(corpus.tokens(1), ElementsAre('c', 'd', 'e', 256));
}

TEST(DataPreprocess, BosStartsEverySequenceAndEodEndsTheDocument) {
  const fs::path directory = fresh_directory("bos");
  PreprocessOptions options =
      options_for(directory, "{\"text\": \"ab\"}\n{\"text\": \"\"}\n{\"text\": [\"c\", \"\"]}\n");
  options.append_eod = true;
  const PreprocessSummary summary = preprocess_jsonl(options, ByteTokenizer(true, /*has_bos=*/true));
  const IndexedDatasetReader corpus(summary.outputs[0]);
  // As Megatron's tokenize, an empty text still gets its BOS, so it is a sequence.
  ASSERT_EQ(corpus.sequence_count(), 4);
  EXPECT_THAT(corpus.tokens(0), ElementsAre(257, 'a', 'b', 256));
  EXPECT_THAT(corpus.tokens(1), ElementsAre(257, 256));
  EXPECT_THAT(corpus.tokens(2), ElementsAre(257, 'c'));
  EXPECT_THAT(corpus.tokens(3), ElementsAre(257, 256));
  EXPECT_EQ(summary.totals.tokens, 10);
}

TEST(DataPreprocess, SeveralJsonKeysWriteSeveralPairs) {
  const fs::path directory = fresh_directory("keys");
  PreprocessOptions options =
      options_for(directory, "{\"title\": \"T1\", \"text\": \"body\"}\r\n{\"text\": \"b2\", \"title\": \"\"}\r\n");
  options.json_keys = {"text", "title"};
  const PreprocessSummary summary = preprocess_jsonl(options, ByteTokenizer());
  ASSERT_THAT(summary.outputs, ElementsAre(directory / "corpus_text_document", directory / "corpus_title_document"));
  const IndexedDatasetReader text(summary.outputs[0]);
  const IndexedDatasetReader title(summary.outputs[1]);
  EXPECT_EQ(text.document_count(), 2);
  EXPECT_EQ(text.tokens(0), bytes_of("body"));
  EXPECT_EQ(text.tokens(1), bytes_of("b2"));
  EXPECT_EQ(title.document_count(), 2);
  ASSERT_EQ(title.sequence_count(), 1);
  EXPECT_EQ(title.tokens(0), bytes_of("T1"));
}

TEST(DataPreprocess, OutputDoesNotDependOnTheWorkerCount) {
  const fs::path directory = fresh_directory("workers");
  std::string text;
  for (int line = 0; line < 3000; ++line)
    text += "{\"text\": \"" + std::string(size_t(line * 7919 % 61), char('a' + line % 26)) + "\"}\n";
  std::vector<std::string> outputs;
  for (const int workers : {1, 4}) {
    PreprocessOptions options = options_for(directory, text);
    options.output_prefix = (directory / ("workers" + std::to_string(workers))).string();
    options.workers = workers;
    options.chunk_bytes = 256;  // hundreds of chunks, finished out of order
    options.append_eod = true;
    const PreprocessSummary summary = preprocess_jsonl(options, ByteTokenizer());
    EXPECT_EQ(summary.totals.documents, 3000);
    EXPECT_EQ(summary.totals.bytes_read, int64_t(text.size()));
    outputs.push_back(file_bytes(data_file_path(summary.outputs[0])) + file_bytes(index_file_path(summary.outputs[0])));
  }
  EXPECT_GT(outputs[0].size(), 3000u);
  EXPECT_TRUE(outputs[0] == outputs[1]) << "1 and 4 workers wrote different bytes";
}

TEST(DataPreprocess, ABadLineIsNamedAndLeavesNoOutput) {
  const fs::path directory = fresh_directory("bad_json");
  const PreprocessOptions options = options_for(directory, "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": oops}\n");
  EXPECT_THAT([&] { preprocess_jsonl(options, ByteTokenizer()); },
              ::testing::ThrowsMessage<Error>(AllOf(HasSubstr("line 3"), HasSubstr("not valid JSON"))));
  EXPECT_FALSE(fs::exists(directory / "corpus_text_document.bin"));
  EXPECT_FALSE(fs::exists(directory / "corpus_text_document.idx"));
  // Only the input is left: no temporary either.
  EXPECT_EQ(std::distance(fs::directory_iterator(directory), fs::directory_iterator()), 1);
}

TEST(DataPreprocess, NamesTheFirstBadLineWhateverTheWorkers) {
  const fs::path directory = fresh_directory("first_bad");
  std::string text;
  for (int line = 1; line <= 400; ++line) text += line == 120 || line == 330 ? "[1, 2]\n" : "{\"text\": \"abc\"}\n";
  PreprocessOptions options = options_for(directory, text);
  options.workers = 4;
  options.chunk_bytes = 64;
  EXPECT_THAT([&] { preprocess_jsonl(options, ByteTokenizer()); },
              ::testing::ThrowsMessage<Error>(AllOf(HasSubstr("line 120:"), HasSubstr("not an object"))));
}

TEST(DataPreprocess, AMissingKeyIsNamedWithItsLine) {
  const fs::path directory = fresh_directory("missing_key");
  PreprocessOptions options = options_for(directory, "{\"text\": \"a\", \"title\": \"t\"}\n{\"text\": \"b\"}\n");
  options.json_keys = {"text", "title"};
  EXPECT_THAT([&] { preprocess_jsonl(options, ByteTokenizer()); },
              ::testing::ThrowsMessage<Error>(AllOf(HasSubstr("line 2"), HasSubstr("no key \"title\""))));
}

TEST(DataPreprocess, ANonStringValueIsRefused) {
  const fs::path directory = fresh_directory("number");
  const PreprocessOptions options = options_for(directory, "{\"text\": 42}\n");
  EXPECT_THAT([&] { preprocess_jsonl(options, ByteTokenizer()); },
              ::testing::ThrowsMessage<Error>(AllOf(HasSubstr("line 1"), HasSubstr("string or a list of strings"))));
}

TEST(DataPreprocess, AnInterruptedRunWritesNothing) {
  const fs::path directory = fresh_directory("interrupted");
  PreprocessOptions options = options_for(directory, "{\"text\": \"a\"}\n");
  const std::atomic<bool> interrupted{true};
  options.interrupted = &interrupted;
  const PreprocessSummary summary = preprocess_jsonl(options, ByteTokenizer());
  EXPECT_TRUE(summary.interrupted);
  EXPECT_EQ(std::distance(fs::directory_iterator(directory), fs::directory_iterator()), 1);
}

TEST(DataPreprocess, ReportsProgressUpToTheWholeInput) {
  const fs::path directory = fresh_directory("progress");
  std::string text;
  for (int line = 0; line < 100; ++line) text += "{\"text\": \"0123456789\"}\n";
  PreprocessOptions options = options_for(directory, text);
  options.chunk_bytes = 100;
  std::vector<PreprocessProgress> reports;
  options.on_progress = [&](const PreprocessProgress& progress) { reports.push_back(progress); };
  preprocess_jsonl(options, ByteTokenizer());
  ASSERT_GT(reports.size(), 10u);
  EXPECT_EQ(reports.back().documents, 100);
  EXPECT_EQ(reports.back().tokens, 1000);
  EXPECT_EQ(reports.back().bytes_read, reports.back().input_bytes);
}

TEST(DataPreprocess, NamesOutputsAsMegatron) {
  EXPECT_EQ(preprocessed_prefix("data/wiki", "text"), fs::path("data/wiki_text_document"));
}

}  // namespace
}  // namespace moebench::data
