#pragma once
// The part of tensorflow.Event (tensorflow/core/util/event.proto) that
// moebench writes and reads, in protobuf wire format encoded by hand:
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//   Summary { repeated Value value = 1; }
//   Value   { string tag = 1; float simple_value = 2; }
// Fields we do not know are skipped when decoding, as protobuf requires.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moebench {

// The version string TensorBoard expects in an event file's first event.
inline constexpr std::string_view kTensorBoardFileVersion = "brain.Event:2";

struct TensorBoardScalar {
  std::string tag;
  int64_t step = 0;
  float value = 0.0f;
  double wall_time = 0.0;  // seconds since the Unix epoch
};

// What decode_tensorboard_event finds in one Event.
struct TensorBoardEvent {
  double wall_time = 0.0;
  int64_t step = 0;
  std::string file_version;                 // empty unless this is the file's first event
  std::vector<TensorBoardScalar> scalars;  // the summary's simple values, stamped with step and wall_time
};

// Event{wall_time, file_version: "brain.Event:2"}, the first event of a file.
std::string encode_file_version_event(double wall_time);
// Event{wall_time, step, summary{value{tag, simple_value}}}.
std::string encode_scalar_event(const TensorBoardScalar& scalar);
// Throws when `bytes` is not well-formed protobuf.
TensorBoardEvent decode_tensorboard_event(std::string_view bytes);

}  // namespace moebench
