#pragma once
// TFRecord, the container of TensorBoard event files. Each record is
//   uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)
// all little-endian. The CRCs let a reader tell a torn or corrupted record
// from a good one.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moebench {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): "123456789" -> 0xE3069283.
uint32_t crc32c(std::string_view bytes);

// TFRecord's masking of a CRC, so a CRC stored inside checksummed data does
// not checksum to a fixed value: rotate right by 15, add 0xa282ead8.
uint32_t masked_crc32c(std::string_view bytes);

// `data` framed as one record, ready to append to a file.
std::string frame_tfrecord(std::string_view data);

// The records of a whole TFRecord file, every CRC verified. `source` names the
// file in errors; a CRC mismatch or a truncated record throws with its offset.
std::vector<std::string> parse_tfrecords(std::string_view file_bytes, const std::string& source);

}  // namespace moebench
