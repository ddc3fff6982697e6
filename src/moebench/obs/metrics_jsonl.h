#pragma once
// metrics.jsonl: one JSON object per line, appended and flushed line by line,
// so a resumed run extends the file and a crash loses at most one line.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace moebench {

class MetricsJsonlWriter {
 public:
  // Creates the parent directory if needed and opens `path` for appending.
  explicit MetricsJsonlWriter(const std::filesystem::path& path);

  // Appends `record`, which must be a JSON object, as one line.
  void write(const nlohmann::json& record);

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::ofstream out_;
};

}  // namespace moebench
