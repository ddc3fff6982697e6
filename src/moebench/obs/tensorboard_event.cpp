#include "moebench/obs/tensorboard_event.h"

#include <bit>
#include <type_traits>

#include "moebench/core/error.h"

namespace moebench {
namespace {

enum class WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

namespace event_field {
constexpr uint32_t kWallTime = 1;
constexpr uint32_t kStep = 2;
constexpr uint32_t kFileVersion = 3;
constexpr uint32_t kSummary = 5;
}  // namespace event_field
namespace summary_field {
constexpr uint32_t kValue = 1;
}  // namespace summary_field
namespace value_field {
constexpr uint32_t kTag = 1;
constexpr uint32_t kSimpleValue = 2;
}  // namespace value_field

void append_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void append_key(std::string& out, uint32_t field, WireType type) {
  append_varint(out, (uint64_t{field} << 3) | static_cast<uint32_t>(type));
}

template <typename T>
void append_fixed(std::string& out, uint32_t field, WireType type, T value) {
  append_key(out, field, type);
  using Bits = std::conditional_t<sizeof(T) == 8, uint64_t, uint32_t>;
  const Bits bits = std::bit_cast<Bits>(value);
  for (size_t i = 0; i < sizeof(Bits); ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xffu));
}

void append_length_delimited(std::string& out, uint32_t field, std::string_view bytes) {
  append_key(out, field, WireType::kLengthDelimited);
  append_varint(out, bytes.size());
  out.append(bytes);
}

// One field as read off the wire: `value` holds a varint or fixed-width
// number, `bytes` a string or nested message.
struct WireField {
  uint32_t number = 0;
  WireType type = WireType::kVarint;
  uint64_t value = 0;
  std::string_view bytes;
};

// Walks the fields of one message.
class WireReader {
 public:
  explicit WireReader(std::string_view message) : rest_(message) {}

  bool next(WireField& field) {
    if (rest_.empty()) return false;
    const uint64_t key = read_varint();
    field.number = static_cast<uint32_t>(key >> 3);
    field.type = static_cast<WireType>(key & 7);
    switch (field.type) {
      case WireType::kVarint:
        field.value = read_varint();
        break;
      case WireType::kFixed64:
        field.value = read_fixed(8);
        break;
      case WireType::kFixed32:
        field.value = read_fixed(4);
        break;
      case WireType::kLengthDelimited:
        field.bytes = take(read_varint());
        break;
      default:
        throw Error("TensorBoard event: unsupported protobuf wire type " + std::to_string(key & 7) + " in field " +
                    std::to_string(field.number) + "; the event is corrupt or not a tensorflow.Event");
    }
    return true;
  }

 private:
  std::string_view take(uint64_t count) {
    if (count > rest_.size()) {
      throw Error("TensorBoard event: a protobuf field needs " + std::to_string(count) + " bytes, only " +
                  std::to_string(rest_.size()) + " remain; the event is corrupt");
    }
    const std::string_view taken = rest_.substr(0, count);
    rest_.remove_prefix(count);
    return taken;
  }

  uint64_t read_varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const auto byte = static_cast<unsigned char>(take(1)[0]);
      value |= uint64_t{byte & 0x7fu} << shift;
      if ((byte & 0x80u) == 0) return value;
    }
    throw Error("TensorBoard event: a protobuf varint runs past 10 bytes; the event is corrupt");
  }

  uint64_t read_fixed(size_t width) {
    const std::string_view bytes = take(width);
    uint64_t value = 0;
    for (size_t i = 0; i < width; ++i) value |= uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
    return value;
  }

  std::string_view rest_;
};

// Appends the (tag, simple_value) of one Summary.Value; values of other kinds are skipped.
void decode_summary_value(std::string_view message, TensorBoardEvent& event) {
  TensorBoardScalar scalar;
  bool has_simple_value = false;
  WireReader reader(message);
  for (WireField field; reader.next(field);) {
    if (field.number == value_field::kTag && field.type == WireType::kLengthDelimited) {
      scalar.tag = std::string(field.bytes);
    } else if (field.number == value_field::kSimpleValue && field.type == WireType::kFixed32) {
      scalar.value = std::bit_cast<float>(static_cast<uint32_t>(field.value));
      has_simple_value = true;
    }
  }
  if (has_simple_value) event.scalars.push_back(std::move(scalar));
}

}  // namespace

std::string encode_file_version_event(double wall_time) {
  std::string event;
  append_fixed(event, event_field::kWallTime, WireType::kFixed64, wall_time);
  append_length_delimited(event, event_field::kFileVersion, kTensorBoardFileVersion);
  return event;
}

std::string encode_scalar_event(const TensorBoardScalar& scalar) {
  std::string value;
  append_length_delimited(value, value_field::kTag, scalar.tag);
  append_fixed(value, value_field::kSimpleValue, WireType::kFixed32, scalar.value);
  std::string summary;
  append_length_delimited(summary, summary_field::kValue, value);

  std::string event;
  append_fixed(event, event_field::kWallTime, WireType::kFixed64, scalar.wall_time);
  append_key(event, event_field::kStep, WireType::kVarint);
  append_varint(event, static_cast<uint64_t>(scalar.step));  // int64: negatives take 10 bytes
  append_length_delimited(event, event_field::kSummary, summary);
  return event;
}

TensorBoardEvent decode_tensorboard_event(std::string_view bytes) {
  TensorBoardEvent event;
  WireReader reader(bytes);
  for (WireField field; reader.next(field);) {
    if (field.number == event_field::kWallTime && field.type == WireType::kFixed64) {
      event.wall_time = std::bit_cast<double>(field.value);
    } else if (field.number == event_field::kStep && field.type == WireType::kVarint) {
      event.step = static_cast<int64_t>(field.value);
    } else if (field.number == event_field::kFileVersion && field.type == WireType::kLengthDelimited) {
      event.file_version = std::string(field.bytes);
    } else if (field.number == event_field::kSummary && field.type == WireType::kLengthDelimited) {
      WireReader summary(field.bytes);
      for (WireField value; summary.next(value);) {
        if (value.number == summary_field::kValue && value.type == WireType::kLengthDelimited) {
          decode_summary_value(value.bytes, event);
        }
      }
    }
  }
  // Step and wall time may follow the summary on the wire, so stamp the scalars last.
  for (TensorBoardScalar& scalar : event.scalars) {
    scalar.step = event.step;
    scalar.wall_time = event.wall_time;
  }
  return event;
}

}  // namespace moebench
