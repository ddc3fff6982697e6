#include "moebench/obs/tensorboard_reader.h"

#include <fstream>
#include <iterator>
#include <string>

#include "moebench/core/error.h"
#include "moebench/obs/tfrecord.h"

namespace moebench {

std::vector<TensorBoardScalar> read_tensorboard_scalars(const std::filesystem::path& event_file) {
  std::ifstream in(event_file, std::ios::binary);
  if (!in) throw Error("TensorBoard event file '" + event_file.string() + "' cannot be opened; check the path");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());

  std::vector<TensorBoardScalar> scalars;
  for (const std::string& record : parse_tfrecords(bytes, event_file.string())) {
    TensorBoardEvent event = decode_tensorboard_event(record);
    for (TensorBoardScalar& scalar : event.scalars) scalars.push_back(std::move(scalar));
  }
  return scalars;
}

}  // namespace moebench
