#include "moebench/data/indexed_dataset.h"

#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string_view>

#include "moebench/core/atomic_file.h"
#include "moebench/core/error.h"

namespace moebench::data {
namespace {

static_assert(std::endian::native == std::endian::little, "the .idx/.bin format is little-endian");

constexpr std::string_view kIndexMagic("MMIDIDX\0\0", 9);
constexpr uint64_t kIndexVersion = 1;
constexpr int64_t kHeaderBytes = 9 + 8 + 1 + 8 + 8;

bool is_known_code(uint8_t code) { return code >= 1 && code <= 8; }

template <typename T>
void append_scalar(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(T));
}

template <typename T>
void append_array(std::string& out, const std::vector<T>& values) {
  out.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// Stores one token id in the corpus type, refusing values the type cannot hold.
template <typename T>
void store_token(int64_t token, std::string& out) {
  if constexpr (std::is_integral_v<T>) {
    if (token < int64_t(std::numeric_limits<T>::min()) || token > int64_t(std::numeric_limits<T>::max()))
      throw Error("token id " + std::to_string(token) + " does not fit the corpus token type " +
                  token_dtype_name(token_dtype_of<T>()) + "; build the corpus with a wider type (int32)");
  }
  append_scalar(out, T(token));
}

template <typename T>
void widen_tokens(const std::byte* data, int64_t count, std::vector<int64_t>& out) {
  for (int64_t i = 0; i < count; ++i) {
    T value;
    std::memcpy(&value, data + i * int64_t(sizeof(T)), sizeof(T));
    out.push_back(int64_t(value));
  }
}

}  // namespace

size_t token_dtype_size(TokenDType dtype) {
  switch (dtype) {
    case TokenDType::UInt8:
    case TokenDType::Int8: return 1;
    case TokenDType::Int16:
    case TokenDType::UInt16: return 2;
    case TokenDType::Int32:
    case TokenDType::Float32: return 4;
    case TokenDType::Int64:
    case TokenDType::Float64: return 8;
  }
  throw Error("unknown token dtype code " + std::to_string(int(dtype)));
}

std::string token_dtype_name(TokenDType dtype) {
  switch (dtype) {
    case TokenDType::UInt8: return "uint8";
    case TokenDType::Int8: return "int8";
    case TokenDType::Int16: return "int16";
    case TokenDType::Int32: return "int32";
    case TokenDType::Int64: return "int64";
    case TokenDType::Float64: return "float64";
    case TokenDType::Float32: return "float32";
    case TokenDType::UInt16: return "uint16";
  }
  return "code " + std::to_string(int(dtype));
}

TokenDType token_dtype_for_vocabulary(int64_t vocab_size) {
  return vocab_size < 65500 ? TokenDType::UInt16 : TokenDType::Int32;
}

std::filesystem::path index_file_path(const std::filesystem::path& prefix) {
  return std::filesystem::path(prefix.string() + ".idx");
}

std::filesystem::path data_file_path(const std::filesystem::path& prefix) {
  return std::filesystem::path(prefix.string() + ".bin");
}

// ---------------------------------------------------------------- reader

IndexedDatasetReader::IndexedDatasetReader(const std::filesystem::path& prefix)
    : prefix_(prefix), index_(index_file_path(prefix)), data_(data_file_path(prefix)) {
  const std::string where = "index '" + index_.path().string() + "'";
  const std::string rebuild = "; re-run preprocessing to rebuild the .bin/.idx pair";
  const auto bytes = index_.bytes();
  const int64_t size = int64_t(bytes.size());
  if (size < kHeaderBytes)
    throw Error(where + " is " + std::to_string(size) + " bytes, shorter than the " +
                std::to_string(kHeaderBytes) + "-byte header" + rebuild);
  if (std::string_view(reinterpret_cast<const char*>(bytes.data()), kIndexMagic.size()) != kIndexMagic)
    throw Error(where + " does not start with the magic MMIDIDX\\0\\0; it is not a Megatron indexed dataset");
  const auto version = read_index_entry<uint64_t>(9);
  if (version != kIndexVersion)
    throw Error(where + " has version " + std::to_string(version) + "; only version 1 is understood" + rebuild);
  const auto code = read_index_entry<uint8_t>(17);
  if (!is_known_code(code))
    throw Error(where + " has token dtype code " + std::to_string(int(code)) +
                "; known codes are 1-8 (uint8 int8 int16 int32 int64 float64 float32 uint16)" + rebuild);
  dtype_ = TokenDType(code);
  const auto sequences = read_index_entry<uint64_t>(18);
  const auto entries = read_index_entry<uint64_t>(26);
  // Counts beyond the file size are corruption; this bound also keeps the
  // arithmetic below from overflowing.
  if (sequences > uint64_t(size) || entries > uint64_t(size))
    throw Error(where + " claims " + std::to_string(sequences) + " sequences and " + std::to_string(entries) +
                " document entries, more than its " + std::to_string(size) + " bytes can hold" + rebuild);
  sequence_count_ = int64_t(sequences);
  document_entries_ = int64_t(entries);
  lengths_offset_ = kHeaderBytes;
  pointers_offset_ = lengths_offset_ + 4 * sequence_count_;
  documents_offset_ = pointers_offset_ + 8 * sequence_count_;
  const int64_t expected = documents_offset_ + 8 * document_entries_;
  if (size < expected)
    throw Error(where + " is " + std::to_string(size) + " bytes but its counts (" + std::to_string(sequence_count_) +
                " sequences, " + std::to_string(document_entries_) + " document entries) need " +
                std::to_string(expected) + "; the file is truncated" + rebuild);
  if (size > expected)
    throw Error(where + " has " + std::to_string(size - expected) +
                " bytes after its document index (a multimodal corpus with sequence modes?); only text corpora are read");
  if (document_entries_ < 1 || document_index(0) != 0 || document_index(document_entries_ - 1) != sequence_count_)
    throw Error(where + " has a document index that does not run from 0 to the sequence count " +
                std::to_string(sequence_count_) + rebuild);
  const int64_t data_size = int64_t(data_.bytes().size());
  const int64_t data_expected =
      sequence_count_ == 0 ? 0
                           : sequence_pointer(sequence_count_ - 1) +
                                 int64_t(sequence_length(sequence_count_ - 1)) * int64_t(token_dtype_size(dtype_));
  if (data_size != data_expected)
    throw Error("data '" + data_.path().string() + "' is " + std::to_string(data_size) + " bytes but its index says " +
                std::to_string(data_expected) + " (last pointer + last length x token size); the pair does not match" +
                rebuild);
}

template <typename T>
T IndexedDatasetReader::read_index_entry(int64_t byte_offset) const {
  T value;
  std::memcpy(&value, index_.bytes().data() + byte_offset, sizeof(T));
  return value;
}

int32_t IndexedDatasetReader::sequence_length(int64_t sequence) const {
  return read_index_entry<int32_t>(lengths_offset_ + 4 * sequence);
}

int64_t IndexedDatasetReader::sequence_pointer(int64_t sequence) const {
  return read_index_entry<int64_t>(pointers_offset_ + 8 * sequence);
}

int64_t IndexedDatasetReader::document_index(int64_t entry) const {
  return read_index_entry<int64_t>(documents_offset_ + 8 * entry);
}

std::vector<int32_t> IndexedDatasetReader::sequence_lengths() const {
  std::vector<int32_t> lengths(static_cast<size_t>(sequence_count_));
  if (sequence_count_ > 0)
    std::memcpy(lengths.data(), index_.bytes().data() + lengths_offset_, lengths.size() * sizeof(int32_t));
  return lengths;
}

IndexedDatasetReader::ByteRange IndexedDatasetReader::locate(int64_t sequence, int64_t offset, int64_t length,
                                                             TokenDType requested) const {
  if (requested != dtype_)
    throw Error("corpus '" + prefix_.string() + "' stores " + token_dtype_name(dtype_) + " tokens, read as " +
                token_dtype_name(requested) + "; use view<> with the stored type or tokens() to widen");
  if (sequence < 0 || sequence >= sequence_count_)
    throw Error("sequence " + std::to_string(sequence) + " is outside corpus '" + prefix_.string() + "' of " +
                std::to_string(sequence_count_) + " sequences");
  const int64_t available = sequence_length(sequence);
  if (length < 0) length = available - offset;
  if (offset < 0 || length < 0 || offset + length > available)
    throw Error("tokens [" + std::to_string(offset) + ", " + std::to_string(offset + length) + ") of sequence " +
                std::to_string(sequence) + " in '" + prefix_.string() + "' exceed its " + std::to_string(available) +
                " tokens");
  const int64_t item = int64_t(token_dtype_size(dtype_));
  return {data_.bytes().data() + sequence_pointer(sequence) + offset * item, length};
}

void IndexedDatasetReader::append_tokens(int64_t sequence, int64_t offset, int64_t length,
                                         std::vector<int64_t>& out) const {
  const ByteRange range = locate(sequence, offset, length, dtype_);
  out.reserve(out.size() + size_t(range.count));
  switch (dtype_) {
    case TokenDType::UInt8: return widen_tokens<uint8_t>(range.data, range.count, out);
    case TokenDType::Int8: return widen_tokens<int8_t>(range.data, range.count, out);
    case TokenDType::Int16: return widen_tokens<int16_t>(range.data, range.count, out);
    case TokenDType::Int32: return widen_tokens<int32_t>(range.data, range.count, out);
    case TokenDType::Int64: return widen_tokens<int64_t>(range.data, range.count, out);
    case TokenDType::Float64: return widen_tokens<double>(range.data, range.count, out);
    case TokenDType::Float32: return widen_tokens<float>(range.data, range.count, out);
    case TokenDType::UInt16: return widen_tokens<uint16_t>(range.data, range.count, out);
  }
}

std::vector<int64_t> IndexedDatasetReader::tokens(int64_t sequence, int64_t offset, int64_t length) const {
  std::vector<int64_t> out;
  append_tokens(sequence, offset, length, out);
  return out;
}

// ---------------------------------------------------------------- builder

IndexedDatasetBuilder::IndexedDatasetBuilder(std::filesystem::path prefix, TokenDType dtype)
    : prefix_(std::move(prefix)), dtype_(dtype) {
  if (!is_known_code(uint8_t(dtype)))
    throw Error("token dtype code " + std::to_string(int(dtype)) + " is not one of Megatron's codes 1-8");
  temporary_data_ = data_file_path(prefix_);
  temporary_data_ += ".tmp." + std::to_string(::getpid());
  if (prefix_.has_parent_path()) std::filesystem::create_directories(prefix_.parent_path());
  data_.open(temporary_data_, std::ios::binary | std::ios::trunc);
  if (!data_) throw Error("cannot create '" + temporary_data_.string() + "'; check permissions and disk space");
}

IndexedDatasetBuilder::~IndexedDatasetBuilder() {
  if (finalized_) return;
  data_.close();
  std::error_code ignored;
  std::filesystem::remove(temporary_data_, ignored);
}

void IndexedDatasetBuilder::write_tokens(std::span<const int64_t> tokens) {
  if (finalized_) throw Error("indexed dataset '" + prefix_.string() + "' is already finalized; start a new builder");
  std::string bytes;
  bytes.reserve(tokens.size() * token_dtype_size(dtype_));
  for (const int64_t token : tokens) {
    switch (dtype_) {
      case TokenDType::UInt8: store_token<uint8_t>(token, bytes); break;
      case TokenDType::Int8: store_token<int8_t>(token, bytes); break;
      case TokenDType::Int16: store_token<int16_t>(token, bytes); break;
      case TokenDType::Int32: store_token<int32_t>(token, bytes); break;
      case TokenDType::Int64: store_token<int64_t>(token, bytes); break;
      case TokenDType::Float64: store_token<double>(token, bytes); break;
      case TokenDType::Float32: store_token<float>(token, bytes); break;
      case TokenDType::UInt16: store_token<uint16_t>(token, bytes); break;
    }
  }
  data_.write(bytes.data(), std::streamsize(bytes.size()));
  if (!data_) throw Error("cannot write '" + temporary_data_.string() + "'; check disk space");
}

void IndexedDatasetBuilder::add_item(std::span<const int64_t> tokens) {
  if (tokens.size() > size_t(std::numeric_limits<int32_t>::max()))
    throw Error("a sequence of " + std::to_string(tokens.size()) +
                " tokens exceeds the int32 length field of the .idx; split it into several items");
  write_tokens(tokens);
  sequence_lengths_.push_back(int32_t(tokens.size()));
}

void IndexedDatasetBuilder::end_document() { document_indices_.push_back(int64_t(sequence_lengths_.size())); }

void IndexedDatasetBuilder::add_document(std::span<const int64_t> tokens, std::span<const int32_t> sequence_lengths) {
  const int64_t total = std::accumulate(sequence_lengths.begin(), sequence_lengths.end(), int64_t(0));
  if (total != int64_t(tokens.size()))
    throw Error("document of " + std::to_string(tokens.size()) + " tokens given sequence lengths summing to " +
                std::to_string(total) + "; the lengths must partition the document");
  size_t start = 0;
  for (const int32_t length : sequence_lengths) {
    if (length < 0) throw Error("sequence length " + std::to_string(length) + " is negative");
    add_item(tokens.subspan(start, size_t(length)));
    start += size_t(length);
  }
  end_document();
}

void IndexedDatasetBuilder::finalize() {
  if (finalized_) throw Error("indexed dataset '" + prefix_.string() + "' is already finalized");
  data_.close();
  if (!data_) throw Error("cannot close '" + temporary_data_.string() + "'; check disk space");

  std::vector<int64_t> pointers(sequence_lengths_.size());
  int64_t position = 0;
  for (size_t i = 0; i < sequence_lengths_.size(); ++i) {
    pointers[i] = position;
    position += int64_t(sequence_lengths_[i]) * int64_t(token_dtype_size(dtype_));
  }
  std::string index(kIndexMagic);
  append_scalar(index, kIndexVersion);
  append_scalar(index, uint8_t(dtype_));
  append_scalar(index, uint64_t(sequence_lengths_.size()));
  append_scalar(index, uint64_t(document_indices_.size()));
  append_array(index, sequence_lengths_);
  append_array(index, pointers);
  append_array(index, document_indices_);

  const std::filesystem::path index_path = index_file_path(prefix_);
  std::error_code error;
  std::filesystem::remove(index_path, error);  // a stale .idx must not outlive its .bin
  if (error) throw Error("cannot remove the old '" + index_path.string() + "': " + error.message());
  std::filesystem::rename(temporary_data_, data_file_path(prefix_), error);
  if (error)
    throw Error("cannot rename '" + temporary_data_.string() + "' to '" + data_file_path(prefix_).string() +
                "': " + error.message());
  finalized_ = true;
  write_file_atomically(index_path, index);
}

}  // namespace moebench::data
