#include "moebench/ckpt/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <utility>

#include "moebench/ckpt/half_bits.h"
#include "moebench/ckpt/safetensors_format.h"
#include "moebench/core/error.h"

namespace moebench {
namespace {

using safetensors_format::checked_byte_size;
using safetensors_format::fail;
using safetensors_format::FileDescriptor;
using safetensors_format::kHeaderLengthBytes;
using safetensors_format::kMetadataKey;
using safetensors_format::system_error_text;

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian data; big-endian hosts are not supported");

using nlohmann::json;

// The format caps the header at 100 MB; the cap bounds what a corrupt length makes us parse.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kIndexFileName = "model.safetensors.index.json";
constexpr const char* kSingleFileName = "model.safetensors";

struct DtypeSize {
  const char* dtype;
  size_t bytes;
};
constexpr DtypeSize kDtypeSizes[] = {
    {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
    {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},   {"U8", 1},      {"BOOL", 1},
};

struct Mapping {
  std::shared_ptr<const std::byte> data;
  size_t size = 0;
};

Mapping map_read_only(const std::filesystem::path& path) {
  FileDescriptor file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (file.get() < 0) fail(path, "cannot open: " + system_error_text());
  struct stat info {};
  if (::fstat(file.get(), &info) != 0) fail(path, "cannot stat: " + system_error_text());
  const auto size = static_cast<size_t>(info.st_size);
  if (size < kHeaderLengthBytes) {
    fail(path, "file too short: " + std::to_string(size) +
                   " bytes, a safetensors file starts with an 8-byte header length; the file is not "
                   "safetensors or was cut off");
  }
  void* address = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, file.get(), 0);
  if (address == MAP_FAILED) fail(path, "cannot mmap: " + system_error_text());
  auto unmap = [size](const std::byte* p) { ::munmap(const_cast<std::byte*>(p), size); };
  return {std::shared_ptr<const std::byte>(static_cast<const std::byte*>(address), unmap), size};
}

// A header entry with its offsets relative to the start of the data section.
struct HeaderEntry {
  SafetensorsTensor tensor;
  uint64_t begin = 0;
  uint64_t end = 0;
};

HeaderEntry parse_header_entry(const std::filesystem::path& path, const std::string& name, const json& entry) {
  const auto dtype = entry.find("dtype");
  const auto shape = entry.find("shape");
  const auto offsets = entry.find("data_offsets");
  if (!entry.is_object() || dtype == entry.end() || shape == entry.end() || offsets == entry.end() ||
      !dtype->is_string() || !shape->is_array()) {
    fail(path, "tensor '" + name + "' needs {\"dtype\": str, \"shape\": [int], \"data_offsets\": [begin, end]}, got " +
                   entry.dump());
  }
  HeaderEntry parsed;
  parsed.tensor.name = name;
  parsed.tensor.dtype = dtype->get<std::string>();
  for (const json& dim : *shape) {
    if (!dim.is_number_integer()) fail(path, "tensor '" + name + "' has a non-integer dimension in shape " + shape->dump());
    parsed.tensor.shape.push_back(dim.get<int64_t>());
  }
  if (!offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
      !(*offsets)[1].is_number_unsigned() || (*offsets)[0].get<uint64_t>() > (*offsets)[1].get<uint64_t>()) {
    fail(path, "tensor '" + name + "' has data_offsets " + offsets->dump() +
                   " out of range; they must be two non-negative integers [begin, end] with begin <= end");
  }
  parsed.begin = (*offsets)[0].get<uint64_t>();
  parsed.end = (*offsets)[1].get<uint64_t>();
  const uint64_t expected_bytes = checked_byte_size(path, name, parsed.tensor.dtype, parsed.tensor.shape);
  if (parsed.end - parsed.begin != expected_bytes) {
    fail(path, "tensor '" + name + "' spans " + std::to_string(parsed.end - parsed.begin) + " bytes " +
                   offsets->dump() + " but dtype " + parsed.tensor.dtype + " x shape " + shape->dump() +
                   " needs " + std::to_string(expected_bytes) + "; the header is corrupt");
  }
  return parsed;
}

std::map<std::string, std::string> parse_metadata(const std::filesystem::path& path, const json& metadata) {
  std::map<std::string, std::string> parsed;
  if (!metadata.is_object()) fail(path, std::string(kMetadataKey) + " must be an object of strings, got " + metadata.dump());
  for (const auto& [key, value] : metadata.items()) {
    if (!value.is_string()) {
      fail(path, std::string(kMetadataKey) + " value of '" + key + "' must be a string, got " + value.dump());
    }
    parsed.emplace(key, value.get<std::string>());
  }
  return parsed;
}

// Converts each element, read unaligned, from the tensor's `Source` representation.
template <typename Target, typename Source, typename Convert>
std::vector<Target> convert_elements(const SafetensorsTensor& tensor, Convert convert) {
  const auto count = static_cast<size_t>(tensor.numel());
  if (tensor.bytes.size() != count * sizeof(Source)) {
    throw Error("tensor '" + tensor.name + "' holds " + std::to_string(tensor.bytes.size()) + " bytes but its " +
                tensor.dtype + " shape needs " + std::to_string(count * sizeof(Source)));
  }
  std::vector<Target> values(count);
  for (size_t i = 0; i < count; ++i) {
    Source element;
    std::memcpy(&element, tensor.bytes.data() + i * sizeof(Source), sizeof(Source));
    values[i] = convert(element);
  }
  return values;
}

}  // namespace

int64_t SafetensorsTensor::numel() const {
  int64_t count = 1;
  for (const int64_t dim : shape) count *= dim;
  return count;
}

size_t safetensors_dtype_size(const std::string& dtype) {
  for (const auto& entry : kDtypeSizes) {
    if (dtype == entry.dtype) return entry.bytes;
  }
  throw Error("unknown safetensors dtype '" + dtype +
              "'; expected one of F64 F32 F16 BF16 F8_E4M3 F8_E5M2 I64 I32 I16 I8 U8 BOOL");
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : path_(path) {
  const Mapping mapping = map_read_only(path);
  mapping_ = mapping.data;
  uint64_t header_length = 0;
  std::memcpy(&header_length, mapping.data.get(), kHeaderLengthBytes);
  const uint64_t room = mapping.size - kHeaderLengthBytes;
  if (header_length > room || header_length > kMaxHeaderBytes) {
    fail(path, "header length " + std::to_string(header_length) + " is beyond the file of " +
                   std::to_string(mapping.size) + " bytes; the file is not safetensors or is corrupt");
  }
  const char* header_text = reinterpret_cast<const char*>(mapping.data.get() + kHeaderLengthBytes);
  json header;
  try {
    header = json::parse(header_text, header_text + header_length);
  } catch (const json::parse_error& e) {
    fail(path, std::string("bad JSON header: ") + e.what() + "; the file is not safetensors or is corrupt");
  }
  if (!header.is_object()) fail(path, "bad JSON header: expected an object of tensors, got " + std::string(header.type_name()));

  std::vector<HeaderEntry> entries;
  for (const auto& [name, entry] : header.items()) {
    if (name == kMetadataKey) {
      metadata_ = parse_metadata(path, entry);
    } else {
      entries.push_back(parse_header_entry(path, name, entry));
    }
  }
  std::sort(entries.begin(), entries.end(), [](const HeaderEntry& a, const HeaderEntry& b) {
    return std::pair(a.begin, a.end) < std::pair(b.begin, b.end);
  });
  uint64_t data_end = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i > 0 && entries[i].begin < entries[i - 1].end) {
      fail(path, "tensors '" + entries[i - 1].tensor.name + "' and '" + entries[i].tensor.name +
                     "' overlap (bytes " + std::to_string(entries[i].begin) + " < " + std::to_string(entries[i - 1].end) +
                     "); the header is corrupt");
    }
    data_end = std::max(data_end, entries[i].end);
  }
  const uint64_t data_start = kHeaderLengthBytes + header_length;
  if (data_end > mapping.size - data_start) {
    fail(path, "truncated: the header needs " + std::to_string(data_start + data_end) + " bytes, the file has " +
                   std::to_string(mapping.size) + "; the download or write was cut off, fetch or write it again");
  }
  const std::byte* data = mapping.data.get() + data_start;
  for (HeaderEntry& entry : entries) {
    entry.tensor.bytes = {data + entry.begin, static_cast<size_t>(entry.end - entry.begin)};
    index_by_name_.emplace(entry.tensor.name, tensors_.size());
    tensors_.push_back(std::move(entry.tensor));
  }
}

bool SafetensorsFile::contains(const std::string& name) const { return index_by_name_.contains(name); }

const SafetensorsTensor& SafetensorsFile::tensor(const std::string& name) const {
  const auto found = index_by_name_.find(name);
  if (found == index_by_name_.end()) fail(path_, "no tensor '" + name + "' in it; list tensors() for the names it holds");
  return tensors_[found->second];
}

SafetensorsCheckpoint::SafetensorsCheckpoint(const std::filesystem::path& path) : path_(path) {
  const std::filesystem::path index_path = path / kIndexFileName;
  if (std::filesystem::is_directory(path) && std::filesystem::exists(index_path)) {
    std::ifstream index_stream(index_path);
    json index;
    try {
      index = json::parse(index_stream);
    } catch (const json::parse_error& e) {
      throw Error("safetensors index '" + index_path.string() + "': bad JSON: " + e.what() + "; regenerate the index");
    }
    const auto weight_map = index.find("weight_map");
    if (!index.is_object() || weight_map == index.end() || !weight_map->is_object()) {
      throw Error("safetensors index '" + index_path.string() + "' has no \"weight_map\" object of tensor name -> "
                  "shard file; regenerate the index");
    }
    std::map<std::string, std::vector<std::string>> names_by_shard;
    for (const auto& [name, shard] : weight_map->items()) {
      if (!shard.is_string()) {
        throw Error("safetensors index '" + index_path.string() + "' maps '" + name + "' to " + shard.dump() +
                    ", not a shard file name; regenerate the index");
      }
      names_by_shard[shard.get<std::string>()].push_back(name);
    }
    for (const auto& [shard, names] : names_by_shard) {
      const SafetensorsFile& file = files_.emplace_back(path / shard);
      for (const std::string& name : names) {
        if (!file.contains(name)) {
          throw Error("safetensors index '" + index_path.string() + "' puts tensor '" + name + "' in shard '" + shard +
                      "', which does not hold it; regenerate the index");
        }
        tensors_.emplace(name, file.tensor(name));
      }
    }
    return;
  }
  const std::filesystem::path single = std::filesystem::is_directory(path) ? path / kSingleFileName : path;
  if (!std::filesystem::is_regular_file(single)) {
    throw Error("safetensors checkpoint '" + path.string() + "' not found: pass a .safetensors file or a directory "
                "holding " + kIndexFileName + " or " + kSingleFileName);
  }
  const SafetensorsFile& file = files_.emplace_back(single);
  for (const SafetensorsTensor& tensor : file.tensors()) tensors_.emplace(tensor.name, tensor);
}

bool SafetensorsCheckpoint::contains(const std::string& name) const { return tensors_.contains(name); }

const SafetensorsTensor& SafetensorsCheckpoint::tensor(const std::string& name) const {
  const auto found = tensors_.find(name);
  if (found == tensors_.end()) {
    throw Error("safetensors checkpoint '" + path_.string() + "' has no tensor '" + name +
                "'; list tensors() for the names it holds");
  }
  return found->second;
}

std::vector<float> to_float_vector(const SafetensorsTensor& tensor) {
  if (tensor.dtype == "F32") return convert_elements<float, float>(tensor, [](float v) { return v; });
  if (tensor.dtype == "F64") return convert_elements<float, double>(tensor, [](double v) { return static_cast<float>(v); });
  if (tensor.dtype == "F16") return convert_elements<float, uint16_t>(tensor, half_bits::f16_to_float);
  if (tensor.dtype == "BF16") return convert_elements<float, uint16_t>(tensor, half_bits::bf16_to_float);
  throw Error("tensor '" + tensor.name + "' has dtype " + tensor.dtype +
              ", which does not convert to float; expected F32, F64, F16 or BF16");
}

std::vector<int64_t> to_int64_vector(const SafetensorsTensor& tensor) {
  if (tensor.dtype == "I64") return convert_elements<int64_t, int64_t>(tensor, [](int64_t v) { return v; });
  if (tensor.dtype == "I32") return convert_elements<int64_t, int32_t>(tensor, [](int32_t v) { return int64_t{v}; });
  throw Error("tensor '" + tensor.name + "' has dtype " + tensor.dtype +
              ", which does not convert to int64; expected I64 or I32");
}

}  // namespace moebench
