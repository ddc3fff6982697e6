#include "moebench/data/indexed_dataset.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "moebench/core/error.h"

namespace moebench::data {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

fs::path fresh_directory(const std::string& name) {
  const fs::path directory = fs::temp_directory_path() / ("moebench_data_indexed_" + name);
  fs::remove_all(directory);
  fs::create_directories(directory);
  return directory;
}

template <typename T>
void put(std::string& bytes, T value) {
  bytes.append(reinterpret_cast<const char*>(&value), sizeof(T));
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Two documents of uint16 tokens: document 0 is the sequences {10, 11, 12}
// and {13}; document 1 is the sequence {20, 21}. Written byte by byte to the
// layout Megatron's _IndexWriter produces.
struct HandWrittenPair {
  std::string index;
  std::string data;
};

HandWrittenPair hand_written_pair() {
  HandWrittenPair pair;
  for (const uint16_t token : {10, 11, 12, 13, 20, 21}) put(pair.data, token);
  pair.index.append("MMIDIDX\0\0", 9);
  put<uint64_t>(pair.index, 1);  // version
  put<uint8_t>(pair.index, 8);   // uint16
  put<uint64_t>(pair.index, 3);  // sequences
  put<uint64_t>(pair.index, 3);  // document entries: 0, 2, 3
  for (const int32_t length : {3, 1, 2}) put(pair.index, length);
  for (const int64_t pointer : {0, 6, 8}) put(pair.index, pointer);
  for (const int64_t entry : {0, 2, 3}) put(pair.index, entry);
  return pair;
}

fs::path write_pair(const fs::path& directory, const HandWrittenPair& pair) {
  const fs::path prefix = directory / "corpus";
  write_bytes(index_file_path(prefix), pair.index);
  write_bytes(data_file_path(prefix), pair.data);
  return prefix;
}

std::string error_of(const fs::path& prefix) {
  try {
    IndexedDatasetReader reader(prefix);
  } catch (const Error& error) {
    return error.what();
  }
  return "no error";
}

TEST(DataIndexedDataset, ReadsAHandWrittenMegatronPair) {
  const fs::path prefix = write_pair(fresh_directory("read"), hand_written_pair());
  const IndexedDatasetReader reader(prefix);
  EXPECT_EQ(reader.dtype(), TokenDType::UInt16);
  EXPECT_EQ(reader.sequence_count(), 3);
  EXPECT_EQ(reader.document_count(), 2);
  EXPECT_EQ(reader.document_index(0), 0);
  EXPECT_EQ(reader.document_index(1), 2);
  EXPECT_EQ(reader.document_index(2), 3);
  EXPECT_EQ(reader.sequence_lengths(), (std::vector<int32_t>{3, 1, 2}));
  EXPECT_EQ(reader.sequence_pointer(2), 8);
  EXPECT_EQ(reader.tokens(0), (std::vector<int64_t>{10, 11, 12}));
  EXPECT_EQ(reader.tokens(1), (std::vector<int64_t>{13}));
  EXPECT_EQ(reader.tokens(2), (std::vector<int64_t>{20, 21}));
  EXPECT_EQ(reader.tokens(0, 1, 2), (std::vector<int64_t>{11, 12}));
  EXPECT_EQ(reader.tokens(0, 2), (std::vector<int64_t>{12}));
  const std::span<const uint16_t> view = reader.view<uint16_t>(2);
  ASSERT_EQ(view.size(), 2u);
  EXPECT_EQ(view[1], 21);
  EXPECT_THROW(reader.view<int32_t>(0), Error);
  EXPECT_THROW(reader.tokens(3), Error);
  EXPECT_THROW(reader.tokens(0, 2, 2), Error);
}

TEST(DataIndexedDataset, BuilderWritesTheSameBytesAsMegatron) {
  const fs::path directory = fresh_directory("build");
  const HandWrittenPair expected = hand_written_pair();
  const fs::path prefix = directory / "built";
  {
    IndexedDatasetBuilder builder(prefix, TokenDType::UInt16);
    const std::vector<int64_t> first = {10, 11, 12, 13};
    const std::vector<int32_t> lengths = {3, 1};
    builder.add_document(first, lengths);
    const std::vector<int64_t> second = {20, 21};
    builder.add_item(second);
    builder.end_document();
    builder.finalize();
  }
  EXPECT_EQ(read_bytes(index_file_path(prefix)), expected.index);
  EXPECT_EQ(read_bytes(data_file_path(prefix)), expected.data);
  // Nothing but the pair is left behind.
  EXPECT_EQ(std::distance(fs::directory_iterator(directory), fs::directory_iterator()), 2);
}

TEST(DataIndexedDataset, AnUnfinishedBuildLeavesNoFiles) {
  const fs::path directory = fresh_directory("unfinished");
  {
    IndexedDatasetBuilder builder(directory / "corpus", TokenDType::Int32);
    const std::vector<int64_t> tokens = {1, 2, 3};
    builder.add_item(tokens);
    builder.end_document();
  }
  EXPECT_TRUE(fs::is_empty(directory));
}

TEST(DataIndexedDataset, BuilderRoundTripsEveryTokenType) {
  const fs::path directory = fresh_directory("types");
  for (const TokenDType dtype : {TokenDType::UInt8, TokenDType::Int8, TokenDType::Int16, TokenDType::Int32,
                                 TokenDType::Int64, TokenDType::Float64, TokenDType::Float32, TokenDType::UInt16}) {
    const fs::path prefix = directory / token_dtype_name(dtype);
    IndexedDatasetBuilder builder(prefix, dtype);
    const std::vector<int64_t> tokens = {0, 7, 100, 1};
    builder.add_item(tokens);
    builder.end_document();
    builder.finalize();
    const IndexedDatasetReader reader(prefix);
    EXPECT_EQ(reader.dtype(), dtype);
    EXPECT_EQ(reader.tokens(0), tokens) << token_dtype_name(dtype);
  }
}

TEST(DataIndexedDataset, BuilderRefusesTokensTheTypeCannotHold) {
  IndexedDatasetBuilder builder(fresh_directory("overflow") / "corpus", TokenDType::UInt16);
  const std::vector<int64_t> tokens = {65536};
  EXPECT_THAT([&] { builder.add_item(tokens); },
              ::testing::ThrowsMessage<Error>(HasSubstr("does not fit the corpus token type uint16")));
}

TEST(DataIndexedDataset, PicksMegatronsTokenTypeForAVocabulary) {
  EXPECT_EQ(token_dtype_for_vocabulary(50257), TokenDType::UInt16);
  EXPECT_EQ(token_dtype_for_vocabulary(65499), TokenDType::UInt16);
  EXPECT_EQ(token_dtype_for_vocabulary(65500), TokenDType::Int32);
  EXPECT_EQ(token_dtype_for_vocabulary(151936), TokenDType::Int32);
}

TEST(DataIndexedDataset, RejectsCorruptPairsWithClearErrors) {
  const fs::path directory = fresh_directory("corrupt");
  const HandWrittenPair good = hand_written_pair();

  HandWrittenPair pair = good;
  pair.index[0] = 'X';
  EXPECT_THAT(error_of(write_pair(directory, pair)), HasSubstr("does not start with the magic"));

  pair = good;
  pair.index[9] = 2;
  EXPECT_THAT(error_of(write_pair(directory, pair)), HasSubstr("has version 2"));

  pair = good;
  pair.index[17] = 9;
  EXPECT_THAT(error_of(write_pair(directory, pair)), HasSubstr("token dtype code 9"));

  pair = good;
  pair.index.resize(pair.index.size() - 8);
  EXPECT_THAT(error_of(write_pair(directory, pair)), HasSubstr("the file is truncated"));

  pair = good;
  pair.index.resize(20);
  EXPECT_THAT(error_of(write_pair(directory, pair)), HasSubstr("shorter than the 34-byte header"));

  pair = good;
  pair.data.resize(pair.data.size() - 2);
  EXPECT_THAT(error_of(write_pair(directory, pair)), HasSubstr("the pair does not match"));

  const fs::path prefix = write_pair(directory, good);
  EXPECT_EQ(error_of(prefix), "no error");
  fs::remove(data_file_path(prefix));
  EXPECT_THAT(error_of(prefix), HasSubstr("corpus.bin"));
  EXPECT_THAT(error_of(directory / "absent"), HasSubstr("absent.idx"));
}

}  // namespace
}  // namespace moebench::data
