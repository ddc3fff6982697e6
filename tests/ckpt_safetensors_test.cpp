#include "moebench/ckpt/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "moebench/core/error.h"

namespace moebench {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

const fs::path kFixtures = fs::path(MOEBENCH_SOURCE_DIR) / "tests/fixtures/hf";

// A fresh directory per test, removed afterwards.
class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("moebench_safetensors_" + std::string(test->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
};

template <typename T>
std::span<const std::byte> bytes_of(const std::vector<T>& values) {
  return std::as_bytes(std::span(values));
}

// Writes a file whose header is `header` verbatim, for corrupt-file tests.
void write_raw(const fs::path& path, const std::string& header, size_t data_bytes) {
  const uint64_t length = header.size();
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&length), sizeof(length));
  out << header << std::string(data_bytes, '\0');
}

template <typename Action>
std::string error_message(Action action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a moebench::Error";
  return "";
}

uint64_t header_length_of(const fs::path& path) {
  uint64_t length = 0;
  std::ifstream(path, std::ios::binary).read(reinterpret_cast<char*>(&length), sizeof(length));
  return length;
}

TEST_F(SafetensorsTest, WriteThenReadRoundTrips) {
  const std::vector<float> weights = {1.5f, -2.0f, 0.25f, 3.0f, 4.0f, -0.0f};
  const std::vector<int64_t> ids = {7, 0, -3};
  const std::vector<uint16_t> bf16 = {0x3fc0, 0xc000};  // 1.5, -2
  const std::vector<uint16_t> f16 = {0x3e00, 0x0001, 0x7c00};  // 1.5, 2^-24 (subnormal), inf
  const std::vector<float> loss = {2.75f};
  const std::vector<SafetensorsTensor> tensors = {
      {"weights", "F32", {2, 3}, bytes_of(weights)},
      {"ids", "I64", {3}, bytes_of(ids)},
      {"bf16", "BF16", {2}, bytes_of(bf16)},
      {"f16", "F16", {3}, bytes_of(f16)},
      {"loss", "F32", {}, bytes_of(loss)},
      {"empty", "F32", {0, 4}, {}},
  };
  const fs::path path = dir_ / "round_trip.safetensors";
  write_safetensors(path, tensors, {{"format", "pt"}, {"step", "12"}});

  EXPECT_EQ(header_length_of(path) % 8, 0u);
  const SafetensorsFile file(path);
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"step", "12"}}));
  ASSERT_EQ(file.tensors().size(), tensors.size());
  for (const SafetensorsTensor& written : tensors) {
    const SafetensorsTensor& read = file.tensor(written.name);
    EXPECT_EQ(read.dtype, written.dtype) << written.name;
    EXPECT_EQ(read.shape, written.shape) << written.name;
    ASSERT_EQ(read.bytes.size(), written.bytes.size()) << written.name;
    EXPECT_EQ(std::memcmp(read.bytes.data(), written.bytes.data(), read.bytes.size()), 0) << written.name;
  }
  EXPECT_EQ(to_float_vector(file.tensor("weights")), weights);
  EXPECT_EQ(to_int64_vector(file.tensor("ids")), ids);
  EXPECT_THAT(to_float_vector(file.tensor("bf16")), ElementsAre(1.5f, -2.0f));
  EXPECT_THAT(to_float_vector(file.tensor("f16")), ElementsAre(1.5f, std::ldexp(1.0f, -24), INFINITY));
  EXPECT_EQ(file.tensor("loss").numel(), 1);
  EXPECT_EQ(file.tensor("empty").numel(), 0);
}

TEST_F(SafetensorsTest, ConvertsF64AndI32AndRejectsOtherDtypes) {
  const std::vector<double> doubles = {0.5, -1e10};
  const std::vector<int32_t> ints = {-5, 2147483647};
  const SafetensorsTensor f64{"d", "F64", {2}, bytes_of(doubles)};
  const SafetensorsTensor i32{"i", "I32", {2}, bytes_of(ints)};
  EXPECT_THAT(to_float_vector(f64), ElementsAre(0.5f, -1e10f));
  EXPECT_THAT(to_int64_vector(i32), ElementsAre(-5, 2147483647));
  EXPECT_THAT(error_message([&] { to_int64_vector(f64); }), HasSubstr("expected I64 or I32"));
  EXPECT_THAT(error_message([&] { to_float_vector(i32); }), HasSubstr("expected F32, F64, F16 or BF16"));
}

TEST_F(SafetensorsTest, AtomicWriteReplacesTheFileAndLeavesNoTemporary) {
  const std::vector<float> first = {1.0f};
  const std::vector<float> second = {2.0f, 3.0f};
  const fs::path path = dir_ / "model.safetensors";
  write_safetensors(path, std::vector<SafetensorsTensor>{{"x", "F32", {1}, bytes_of(first)}});
  const SafetensorsFile old_file(path);
  write_safetensors(path, std::vector<SafetensorsTensor>{{"x", "F32", {2}, bytes_of(second)}});

  std::vector<std::string> entries;
  for (const auto& entry : fs::directory_iterator(dir_)) entries.push_back(entry.path().filename().string());
  EXPECT_THAT(entries, ElementsAre("model.safetensors"));
  EXPECT_THAT(to_float_vector(SafetensorsFile(path).tensor("x")), ElementsAre(2.0f, 3.0f));
  // The rename left the old inode, and so the old mapping, intact.
  EXPECT_THAT(to_float_vector(old_file.tensor("x")), ElementsAre(1.0f));
}

TEST_F(SafetensorsTest, WriterRejectsMismatchedBytesAndDuplicateNames) {
  const std::vector<float> values = {1.0f, 2.0f};
  const fs::path path = dir_ / "bad.safetensors";
  EXPECT_THAT(error_message([&] {
                write_safetensors(path, std::vector<SafetensorsTensor>{{"x", "F32", {3}, bytes_of(values)}});
              }),
              HasSubstr("tensor 'x' has 8 bytes but dtype F32 and its shape need 12"));
  EXPECT_THAT(error_message([&] {
                write_safetensors(path, std::vector<SafetensorsTensor>{{"x", "F32", {2}, bytes_of(values)},
                                                                       {"x", "F32", {2}, bytes_of(values)}});
              }),
              HasSubstr("given twice"));
  EXPECT_THAT(error_message([&] {
                write_safetensors(path, std::vector<SafetensorsTensor>{{"x", "F12", {2}, bytes_of(values)}});
              }),
              HasSubstr("unknown safetensors dtype 'F12'"));
  EXPECT_FALSE(fs::exists(path));
}

TEST_F(SafetensorsTest, ReadsTinyMixtralFixture) {
  const SafetensorsFile model(kFixtures / "tiny-mixtral/model.safetensors");
  EXPECT_EQ(model.metadata().at("format"), "pt");
  EXPECT_THAT(model.tensor("model.embed_tokens.weight").shape, ElementsAre(384, 64));
  EXPECT_THAT(model.tensor("model.layers.1.mlp.experts.3.down_proj.weight").shape, ElementsAre(64, 96));
  EXPECT_THAT(model.tensor("model.layers.0.mlp.gate.weight").shape, ElementsAre(4, 64));
  EXPECT_EQ(model.tensor("lm_head.weight").dtype, "F32");

  const SafetensorsFile reference(kFixtures / "tiny-mixtral/reference.safetensors");
  const SafetensorsTensor& input_ids = reference.tensor("input_ids");
  EXPECT_EQ(input_ids.dtype, "I64");
  ASSERT_EQ(input_ids.shape.size(), 2u);
  const SafetensorsTensor& logits = reference.tensor("logits");
  EXPECT_EQ(logits.dtype, "F32");
  EXPECT_THAT(logits.shape, ElementsAre(input_ids.shape[0], input_ids.shape[1], 384));
  EXPECT_TRUE(reference.tensor("loss").shape.empty());
  for (const int64_t id : to_int64_vector(input_ids)) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, 384);
  }
}

TEST_F(SafetensorsTest, ReadsEveryFixtureModelAgainstItsConfig) {
  for (const std::string model : {"tiny-mixtral", "tiny-deepseek-v2-lite", "tiny-deepseek-v2", "tiny-qwen2-moe",
                                  "tiny-qwen3-moe"}) {
    SCOPED_TRACE(model);
    const auto config = nlohmann::json::parse(std::ifstream(kFixtures / model / "config.json"));
    const int64_t vocab = config.at("vocab_size").get<int64_t>();
    const int64_t hidden = config.at("hidden_size").get<int64_t>();
    const SafetensorsCheckpoint checkpoint(kFixtures / model);
    EXPECT_THAT(checkpoint.tensor("model.embed_tokens.weight").shape, ElementsAre(vocab, hidden));
    EXPECT_THAT(checkpoint.tensor("model.norm.weight").shape, ElementsAre(hidden));

    const SafetensorsFile reference(kFixtures / model / "reference.safetensors");
    const auto& input_ids = reference.tensor("input_ids");
    EXPECT_EQ(input_ids.dtype, "I64");
    EXPECT_THAT(reference.tensor("logits").shape, ElementsAre(input_ids.shape[0], input_ids.shape[1], vocab));
  }
}

TEST_F(SafetensorsTest, RejectsFileTooShort) {
  std::ofstream(dir_ / "short.safetensors") << "abc";
  EXPECT_THAT(error_message([&] { SafetensorsFile(dir_ / "short.safetensors"); }), HasSubstr("file too short: 3 bytes"));
}

TEST_F(SafetensorsTest, RejectsHeaderLengthBeyondFile) {
  const uint64_t length = 1000;
  std::ofstream out(dir_ / "long.safetensors", std::ios::binary);
  out.write(reinterpret_cast<const char*>(&length), sizeof(length));
  out << "{}";
  out.close();
  EXPECT_THAT(error_message([&] { SafetensorsFile(dir_ / "long.safetensors"); }),
              HasSubstr("header length 1000 is beyond the file of 10 bytes"));
}

TEST_F(SafetensorsTest, RejectsBadJson) {
  write_raw(dir_ / "json.safetensors", "{\"x\": [", 0);
  EXPECT_THAT(error_message([&] { SafetensorsFile(dir_ / "json.safetensors"); }), HasSubstr("bad JSON header"));
}

TEST_F(SafetensorsTest, RejectsOffsetsOutOfRange) {
  write_raw(dir_ / "range.safetensors", R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", 8);
  EXPECT_THAT(error_message([&] { SafetensorsFile(dir_ / "range.safetensors"); }),
              HasSubstr("tensor 'x' has data_offsets [8,4] out of range"));
}

TEST_F(SafetensorsTest, RejectsOverlappingTensors) {
  write_raw(dir_ / "overlap.safetensors",
            R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
            R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
            12);
  EXPECT_THAT(error_message([&] { SafetensorsFile(dir_ / "overlap.safetensors"); }),
              HasSubstr("tensors 'a' and 'b' overlap"));
}

TEST_F(SafetensorsTest, RejectsOffsetsNotMatchingDtypeAndShape) {
  write_raw(dir_ / "size.safetensors", R"({"x": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 4]}})", 4);
  EXPECT_THAT(error_message([&] { SafetensorsFile(dir_ / "size.safetensors"); }),
              HasSubstr("tensor 'x' spans 4 bytes [0,4] but dtype BF16 x shape [3] needs 6"));
}

TEST_F(SafetensorsTest, RejectsTruncatedData) {
  const fs::path path = dir_ / "truncated.safetensors";
  fs::copy_file(kFixtures / "tiny-mixtral/model.safetensors", path);
  const auto full_size = fs::file_size(path);
  fs::resize_file(path, full_size - 10);
  const std::string message = error_message([&] { SafetensorsFile{path}; });
  EXPECT_THAT(message, HasSubstr("truncated"));
  EXPECT_THAT(message, HasSubstr("needs " + std::to_string(full_size) + " bytes"));
  EXPECT_THAT(message, HasSubstr("the file has " + std::to_string(full_size - 10)));
}

TEST_F(SafetensorsTest, ShardedCheckpointPresentsOneView) {
  const std::vector<float> a = {1.0f, 2.0f};
  const std::vector<float> b = {3.0f};
  const std::vector<float> c = {4.0f, 5.0f, 6.0f};
  write_safetensors(dir_ / "model-00001-of-00002.safetensors",
                    std::vector<SafetensorsTensor>{{"a", "F32", {2}, bytes_of(a)}, {"b", "F32", {1}, bytes_of(b)}});
  write_safetensors(dir_ / "model-00002-of-00002.safetensors",
                    std::vector<SafetensorsTensor>{{"c", "F32", {3}, bytes_of(c)}});
  nlohmann::json index = {{"metadata", {{"total_size", 24}}},
                          {"weight_map",
                           {{"a", "model-00001-of-00002.safetensors"},
                            {"b", "model-00001-of-00002.safetensors"},
                            {"c", "model-00002-of-00002.safetensors"}}}};
  std::ofstream(dir_ / "model.safetensors.index.json") << index.dump();

  const SafetensorsCheckpoint checkpoint(dir_);
  EXPECT_EQ(checkpoint.files().size(), 2u);
  ASSERT_EQ(checkpoint.tensors().size(), 3u);
  EXPECT_THAT(to_float_vector(checkpoint.tensor("a")), ElementsAre(1.0f, 2.0f));
  EXPECT_THAT(to_float_vector(checkpoint.tensor("c")), ElementsAre(4.0f, 5.0f, 6.0f));
  EXPECT_THAT(error_message([&] { checkpoint.tensor("d"); }), HasSubstr("has no tensor 'd'"));

  index["weight_map"]["d"] = "model-00002-of-00002.safetensors";
  std::ofstream(dir_ / "model.safetensors.index.json") << index.dump();
  EXPECT_THAT(error_message([&] { SafetensorsCheckpoint{dir_}; }),
              HasSubstr("puts tensor 'd' in shard 'model-00002-of-00002.safetensors', which does not hold it"));
}

TEST_F(SafetensorsTest, CheckpointDirectoryNeedsIndexOrSingleFile) {
  EXPECT_THAT(error_message([&] { SafetensorsCheckpoint{dir_}; }),
              HasSubstr("holding model.safetensors.index.json or model.safetensors"));
}

}  // namespace
}  // namespace moebench
