#include "moebench/ckpt/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>

#include "moebench/ckpt/safetensors_format.h"

namespace moebench {
namespace {

using nlohmann::json;
using safetensors_format::checked_byte_size;
using safetensors_format::fail;
using safetensors_format::FileDescriptor;
using safetensors_format::kHeaderLengthBytes;
using safetensors_format::kMetadataKey;
using safetensors_format::system_error_text;

// Writes all of `bytes` at `offset`, resuming after partial writes and signals.
bool write_all_at(int fd, std::span<const std::byte> bytes, uint64_t offset) {
  while (!bytes.empty()) {
    const ssize_t written = ::pwrite(fd, bytes.data(), bytes.size(), off_t(offset));
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return false;
    bytes = bytes.subspan(size_t(written));
    offset += uint64_t(written);
  }
  return true;
}

struct Placement {
  uint64_t begin = 0;  // from the start of the file
  uint64_t bytes = 0;
  std::string dtype;
  bool written = false;
};

}  // namespace

struct SafetensorsWriter::Impl {
  std::filesystem::path path;
  std::filesystem::path temporary;
  std::optional<FileDescriptor> file;
  std::map<std::string, Placement> placements;
  bool committed = false;

  [[noreturn]] void abandon(const std::string& step) {
    const std::string reason = system_error_text();
    ::unlink(temporary.c_str());
    fail(path, "cannot " + step + " '" + temporary.string() + "': " + reason +
                   "; check the directory exists, is writable and has space");
  }
};

SafetensorsWriter::SafetensorsWriter(const std::filesystem::path& path, std::vector<SafetensorsEntry> entries,
                                     const std::map<std::string, std::string>& metadata)
    : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  json header = json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  uint64_t offset = 0;
  std::vector<std::pair<std::string, uint64_t>> data_offsets;
  for (size_t i = 0; i < entries.size(); ++i) {
    const SafetensorsEntry& entry = entries[i];
    if (entry.name == kMetadataKey || (i > 0 && entries[i - 1].name == entry.name))
      fail(path, "cannot write tensor name '" + entry.name + "' (reserved or given twice); rename it");
    const uint64_t bytes = checked_byte_size(path, entry.name, entry.dtype, entry.shape);
    header[entry.name] = {{"dtype", entry.dtype}, {"shape", entry.shape}, {"data_offsets", {offset, offset + bytes}}};
    impl_->placements[entry.name] = {offset, bytes, entry.dtype, false};
    offset += bytes;
  }
  // Spaces pad the header to 8 bytes so the data that follows stays 8-byte aligned.
  std::string header_text = header.dump();
  header_text.append((kHeaderLengthBytes - header_text.size() % kHeaderLengthBytes) % kHeaderLengthBytes, ' ');
  const uint64_t header_length = header_text.size();
  const uint64_t data_start = kHeaderLengthBytes + header_length;
  for (auto& [name, placement] : impl_->placements) placement.begin += data_start;

  const std::filesystem::path directory = path.has_parent_path() ? path.parent_path() : ".";
  impl_->temporary = directory / ("." + path.filename().string() + ".tmp." + std::to_string(::getpid()));
  impl_->file.emplace(::open(impl_->temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (impl_->file->get() < 0) impl_->abandon("create");
  // Sized up front, so tensors can land in any order.
  if (::ftruncate(impl_->file->get(), off_t(data_start + offset)) != 0) impl_->abandon("size");
  if (!write_all_at(impl_->file->get(), std::as_bytes(std::span(&header_length, 1)), 0) ||
      !write_all_at(impl_->file->get(), std::as_bytes(std::span(header_text)), kHeaderLengthBytes))
    impl_->abandon("write");
}

SafetensorsWriter::~SafetensorsWriter() {
  if (impl_ && !impl_->committed) ::unlink(impl_->temporary.c_str());
}

void SafetensorsWriter::write(const std::string& name, std::span<const std::byte> bytes) {
  const auto found = impl_->placements.find(name);
  if (found == impl_->placements.end())
    fail(impl_->path, "tensor '" + name + "' was not declared when the writer was made; declare every tensor up front");
  Placement& placement = found->second;
  if (placement.written) fail(impl_->path, "tensor '" + name + "' written twice; write each tensor once");
  if (bytes.size() != placement.bytes)
    fail(impl_->path, "tensor '" + name + "' has " + std::to_string(bytes.size()) + " bytes but dtype " + placement.dtype + " and its shape need " +
                          std::to_string(placement.bytes) + "; pass matching bytes");
  if (!write_all_at(impl_->file->get(), bytes, placement.begin)) impl_->abandon("write");
  placement.written = true;
}

void SafetensorsWriter::commit() {
  for (const auto& [name, placement] : impl_->placements)
    if (!placement.written) fail(impl_->path, "tensor '" + name + "' was never written; write every tensor before commit()");
  if (::fsync(impl_->file->get()) != 0) impl_->abandon("fsync");
  if (!impl_->file->close()) impl_->abandon("close");
  if (::rename(impl_->temporary.c_str(), impl_->path.c_str()) != 0) impl_->abandon("rename into place");
  impl_->committed = true;
  const std::filesystem::path directory = impl_->path.has_parent_path() ? impl_->path.parent_path() : ".";
  FileDescriptor directory_fd(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (directory_fd.get() >= 0) ::fsync(directory_fd.get());  // best effort: some filesystems refuse it
}

void write_safetensors(const std::filesystem::path& path, std::span<const SafetensorsTensor> tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<SafetensorsEntry> entries;
  for (const SafetensorsTensor& tensor : tensors) entries.push_back({tensor.name, tensor.dtype, tensor.shape});
  SafetensorsWriter writer(path, std::move(entries), metadata);
  for (const SafetensorsTensor& tensor : tensors) writer.write(tensor.name, tensor.bytes);
  writer.commit();
}

}  // namespace moebench
