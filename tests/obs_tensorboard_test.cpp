#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <tuple>

#include "moebench/core/error.h"
#include "moebench/obs/tensorboard_event.h"
#include "moebench/obs/tensorboard_reader.h"
#include "moebench/obs/tensorboard_writer.h"
#include "moebench/obs/tfrecord.h"

namespace moebench {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
namespace fs = std::filesystem;

class TensorBoardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("moebench_tensorboard_" + std::string(test->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
};

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
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

// Writes the file-version event and two scalars; returns the file.
fs::path write_two_scalars(const fs::path& dir) {
  TensorBoardWriter writer(dir);
  writer.add_scalar("lm loss", 2.5f, 1);
  writer.add_scalar("lm loss", 2.25f, 2);
  return writer.path();
}

TEST(Crc32cTest, MatchesTheStandardCheckValue) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(""), 0u);
  // RFC 3720 (iSCSI) appendix B.4 vectors.
  EXPECT_EQ(crc32c(std::string(32, '\x00')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string ascending;
  for (char c = 0; c < 32; ++c) ascending.push_back(c);
  EXPECT_EQ(crc32c(ascending), 0x46DD794Eu);
  const uint32_t crc = crc32c("123456789");
  EXPECT_EQ(masked_crc32c("123456789"), ((crc >> 15) | (crc << 17)) + 0xa282ead8u);
}

TEST(TfRecordTest, FramesAndParsesRecords) {
  const std::string file = frame_tfrecord("first") + frame_tfrecord("") + frame_tfrecord("third");
  EXPECT_EQ(file.size(), 3 * 16 + 5 + 0 + 5u);
  EXPECT_EQ(parse_tfrecords(file, "memory"), (std::vector<std::string>{"first", "", "third"}));
}

TEST(TensorBoardEventTest, DecodeSkipsFieldsItDoesNotKnow) {
  std::string event = encode_scalar_event({"throughput", -7, 1.5f, 123.25});
  event += std::string("\x38\x96\x01", 3);  // field 7, varint 150
  event += std::string("\x52\x02xy", 4);    // field 10, 2 bytes
  const TensorBoardEvent decoded = decode_tensorboard_event(event);
  EXPECT_EQ(decoded.step, -7);
  EXPECT_EQ(decoded.wall_time, 123.25);
  ASSERT_EQ(decoded.scalars.size(), 1u);
  EXPECT_EQ(decoded.scalars[0].tag, "throughput");
  EXPECT_EQ(decoded.scalars[0].value, 1.5f);
}

TEST_F(TensorBoardTest, WritesScalarsThatReadBack) {
  const double before = now_seconds();
  fs::path path;
  {
    TensorBoardWriter writer(dir_);
    path = writer.path();
    writer.add_scalar("lm loss", 10.5f, 1);
    writer.add_scalar("learning-rate", 3e-4f, 1);
    writer.add_scalar("lm loss", 9.25f, 2);
    writer.add_scalar("lm loss", 1e30f, 1'000'000'000'000);
    // Flushed per record: readable while the writer is still open.
    EXPECT_EQ(read_tensorboard_scalars(path).size(), 4u);
  }
  const double after = now_seconds();
  EXPECT_EQ(path.parent_path(), dir_);
  EXPECT_THAT(path.filename().string(), StartsWith("events.out.tfevents."));

  const std::vector<TensorBoardScalar> scalars = read_tensorboard_scalars(path);
  ASSERT_EQ(scalars.size(), 4u);
  const std::vector<std::tuple<std::string, int64_t, float>> expected = {
      {"lm loss", 1, 10.5f}, {"learning-rate", 1, 3e-4f}, {"lm loss", 2, 9.25f}, {"lm loss", 1'000'000'000'000, 1e30f}};
  for (size_t i = 0; i < scalars.size(); ++i) {
    EXPECT_EQ(std::tuple(scalars[i].tag, scalars[i].step, scalars[i].value), expected[i]) << i;
    EXPECT_GE(scalars[i].wall_time, before - 1);
    EXPECT_LE(scalars[i].wall_time, after + 1);
  }

  // Every TensorFlow event file opens with these 12 bytes: length 24 (wall_time
  // and "brain.Event:2") and its masked CRC.
  const std::string bytes = read_bytes(path);
  EXPECT_EQ(bytes.substr(0, 12), std::string("\x18\0\0\0\0\0\0\0\xa3\x7f\x4b\x22", 12));
  const std::vector<std::string> records = parse_tfrecords(bytes, path.string());
  ASSERT_EQ(records.size(), 5u);
  EXPECT_EQ(decode_tensorboard_event(records[0]).file_version, "brain.Event:2");
}

TEST_F(TensorBoardTest, TwoWritersInOneDirectoryUseTwoFiles) {
  const TensorBoardWriter first(dir_);
  const TensorBoardWriter second(dir_);
  EXPECT_NE(first.path(), second.path());
}

TEST_F(TensorBoardTest, CorruptDataByteGivesCrcErrorWithOffset) {
  const fs::path path = write_two_scalars(dir_);
  std::string bytes = read_bytes(path);
  const size_t second_record = frame_tfrecord(encode_file_version_event(0.0)).size();
  bytes[second_record + 12 + 3] ^= 0x01;  // a byte of the second record's data
  write_bytes(path, bytes);
  EXPECT_THAT(error_message([&] { read_tensorboard_scalars(path); }),
              HasSubstr("data CRC mismatch in the record at offset " + std::to_string(second_record)));
}

TEST_F(TensorBoardTest, CorruptLengthByteGivesCrcErrorWithOffset) {
  const fs::path path = write_two_scalars(dir_);
  std::string bytes = read_bytes(path);
  bytes[0] ^= 0x40;
  write_bytes(path, bytes);
  EXPECT_THAT(error_message([&] { read_tensorboard_scalars(path); }),
              HasSubstr("length CRC mismatch in the record at offset 0"));
}

TEST_F(TensorBoardTest, TruncatedLastRecordIsReported) {
  const fs::path path = write_two_scalars(dir_);
  const std::string bytes = read_bytes(path);
  const size_t last_record = bytes.size() - frame_tfrecord(encode_scalar_event({"lm loss", 2, 2.25f, 0.0})).size();
  write_bytes(path, bytes.substr(0, bytes.size() - 3));
  EXPECT_THAT(error_message([&] { read_tensorboard_scalars(path); }),
              HasSubstr("truncated record at offset " + std::to_string(last_record)));

  write_bytes(path, bytes.substr(0, last_record + 5));  // cut inside the length header
  EXPECT_THAT(error_message([&] { read_tensorboard_scalars(path); }),
              HasSubstr("truncated record at offset " + std::to_string(last_record) + ": its header needs 12 bytes, only 5"));
}

}  // namespace
}  // namespace moebench
