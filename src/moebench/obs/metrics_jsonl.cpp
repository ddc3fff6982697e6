#include "moebench/obs/metrics_jsonl.h"

#include "moebench/core/error.h"

namespace moebench {

MetricsJsonlWriter::MetricsJsonlWriter(const std::filesystem::path& path) : path_(path) {
  if (path.has_parent_path()) {
    std::error_code error;
    std::filesystem::create_directories(path.parent_path(), error);
    if (error) {
      throw Error("metrics file directory '" + path.parent_path().string() + "' cannot be created: " +
                  error.message() + "; pass a writable output directory");
    }
  }
  out_.open(path, std::ios::app);
  if (!out_) throw Error("metrics file '" + path.string() + "' cannot be opened for appending; check permissions");
}

void MetricsJsonlWriter::write(const nlohmann::json& record) {
  if (!record.is_object()) {
    throw Error("metrics file '" + path_.string() + "': a record must be a JSON object, got " +
                std::string(record.type_name()) + " " + record.dump());
  }
  // NaN and inf, which JSON cannot spell, are written as null.
  out_ << record.dump() << '\n';
  out_.flush();
  if (!out_) throw Error("metrics file '" + path_.string() + "': write failed; check disk space");
}

}  // namespace moebench
