#pragma once
// Writes scalars to a TensorBoard event file, one TFRecord per event, flushed
// after each so a crash loses at most the record being written.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace moebench {

class TensorBoardWriter {
 public:
  // Creates `log_dir` if needed and starts a new file in it named
  // events.out.tfevents.<unix seconds>.<hostname>.<pid>.<n> (n counts the
  // writers of this process, so two never share a file), beginning with the
  // file_version event TensorBoard looks for.
  explicit TensorBoardWriter(const std::filesystem::path& log_dir);

  // Records `value` under `tag` at `step`, stamped with the current time.
  void add_scalar(const std::string& tag, float value, int64_t step);

  const std::filesystem::path& path() const { return path_; }

 private:
  void write_event(const std::string& event);

  std::filesystem::path path_;
  std::ofstream out_;
};

}  // namespace moebench
