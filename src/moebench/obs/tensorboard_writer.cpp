#include "moebench/obs/tensorboard_writer.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>

#include "moebench/core/error.h"
#include "moebench/obs/tensorboard_event.h"
#include "moebench/obs/tfrecord.h"

namespace moebench {
namespace {

double seconds_since_epoch() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string hostname() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "localhost";
  return name;
}

std::atomic<int> writers_started{0};

}  // namespace

TensorBoardWriter::TensorBoardWriter(const std::filesystem::path& log_dir) {
  std::error_code error;
  std::filesystem::create_directories(log_dir, error);
  if (error) {
    throw Error("TensorBoard log directory '" + log_dir.string() + "' cannot be created: " + error.message() +
                "; pass a writable directory");
  }
  const double now = seconds_since_epoch();
  path_ = log_dir / ("events.out.tfevents." + std::to_string(static_cast<int64_t>(std::floor(now))) + "." +
                     hostname() + "." + std::to_string(::getpid()) + "." + std::to_string(writers_started++));
  out_.open(path_, std::ios::binary | std::ios::trunc);
  if (!out_) throw Error("TensorBoard event file '" + path_.string() + "' cannot be opened for writing; check permissions");
  write_event(encode_file_version_event(now));
}

void TensorBoardWriter::add_scalar(const std::string& tag, float value, int64_t step) {
  write_event(encode_scalar_event({tag, step, value, seconds_since_epoch()}));
}

void TensorBoardWriter::write_event(const std::string& event) {
  const std::string record = frame_tfrecord(event);
  out_.write(record.data(), static_cast<std::streamsize>(record.size()));
  out_.flush();
  if (!out_) throw Error("TensorBoard event file '" + path_.string() + "': write failed; check disk space");
}

}  // namespace moebench
