#include "moebench/obs/tfrecord.h"

#include <array>

#include "moebench/core/error.h"

namespace moebench {
namespace {

constexpr size_t kLengthBytes = 8;
constexpr size_t kCrcBytes = 4;

// Byte-at-a-time table: entry b is the CRC register after shifting b through it.
constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t byte = 0; byte < 256; ++byte) {
    uint32_t crc = byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1u) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    table[byte] = crc;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

constexpr uint32_t compute_crc32c(std::string_view bytes) {
  uint32_t crc = ~0u;
  for (const char c : bytes) crc = kCrc32cTable[(crc ^ static_cast<unsigned char>(c)) & 0xffu] ^ (crc >> 8);
  return ~crc;
}
static_assert(compute_crc32c("123456789") == 0xE3069283u, "CRC-32C check value");

template <typename T>
void append_little_endian(std::string& out, T value) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xffu));
}

template <typename T>
T read_little_endian(std::string_view bytes) {
  T value = 0;
  for (size_t i = 0; i < sizeof(T); ++i) value |= static_cast<T>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  return value;
}

std::string truncation_message(const std::string& source, size_t offset, const std::string& what, size_t needed,
                               size_t left) {
  return "TFRecord file '" + source + "': truncated record at offset " + std::to_string(offset) + ": its " + what +
         " needs " + std::to_string(needed) + " bytes, only " + std::to_string(left) +
         " remain; the writer was interrupted mid-record, drop the partial record or rewrite the file";
}

}  // namespace

uint32_t crc32c(std::string_view bytes) { return compute_crc32c(bytes); }

uint32_t masked_crc32c(std::string_view bytes) {
  const uint32_t crc = compute_crc32c(bytes);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string frame_tfrecord(std::string_view data) {
  std::string record;
  record.reserve(kLengthBytes + kCrcBytes + data.size() + kCrcBytes);
  append_little_endian<uint64_t>(record, data.size());
  append_little_endian<uint32_t>(record, masked_crc32c(record));
  record.append(data);
  append_little_endian<uint32_t>(record, masked_crc32c(data));
  return record;
}

std::vector<std::string> parse_tfrecords(std::string_view file_bytes, const std::string& source) {
  std::vector<std::string> records;
  size_t offset = 0;
  while (offset < file_bytes.size()) {
    const std::string_view rest = file_bytes.substr(offset);
    if (rest.size() < kLengthBytes + kCrcBytes) {
      throw Error(truncation_message(source, offset, "header", kLengthBytes + kCrcBytes, rest.size()));
    }
    const std::string_view length_bytes = rest.substr(0, kLengthBytes);
    if (read_little_endian<uint32_t>(rest.substr(kLengthBytes)) != masked_crc32c(length_bytes)) {
      throw Error("TFRecord file '" + source + "': length CRC mismatch in the record at offset " +
                  std::to_string(offset) + "; the file is corrupt from there on");
    }
    const uint64_t length = read_little_endian<uint64_t>(length_bytes);
    const size_t available = rest.size() - (kLengthBytes + kCrcBytes);
    if (available < kCrcBytes || length > available - kCrcBytes) {
      throw Error(truncation_message(source, offset, "data and CRC", length + kCrcBytes, available));
    }
    const std::string_view data = rest.substr(kLengthBytes + kCrcBytes, length);
    if (read_little_endian<uint32_t>(rest.substr(kLengthBytes + kCrcBytes + length)) != masked_crc32c(data)) {
      throw Error("TFRecord file '" + source + "': data CRC mismatch in the record at offset " +
                  std::to_string(offset) + "; the file is corrupt from there on");
    }
    records.emplace_back(data);
    offset += kLengthBytes + kCrcBytes + length + kCrcBytes;
  }
  return records;
}

}  // namespace moebench
