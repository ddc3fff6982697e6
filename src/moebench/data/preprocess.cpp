#include "moebench/data/preprocess.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <string_view>
#include <thread>

#include "moebench/core/error.h"
#include "moebench/data/indexed_dataset.h"

namespace moebench::data {
namespace {

using Clock = std::chrono::steady_clock;

// Whole lines of the input, as the reader cut them.
struct TextChunk {
  int64_t index = 0;       // position in the input, from 0
  int64_t first_line = 0;  // 1-based number of its first line
  std::string text;        // lines, each ending in '\n' except perhaps the file's last
};

// One JSON key's documents of a chunk, ready for IndexedDatasetBuilder::add_document.
struct EncodedColumn {
  std::vector<int64_t> tokens;
  std::vector<int32_t> sequence_lengths;
  std::vector<int32_t> sequences_per_document;
};

struct EncodedChunk {
  std::vector<EncodedColumn> columns;  // one per JSON key
  int64_t documents = 0;
  int64_t tokens = 0;
  int64_t bytes = 0;
  std::exception_ptr error;  // set instead of the columns when a line failed
};

EncodedChunk failed_chunk(std::exception_ptr error) {
  EncodedChunk chunk;
  chunk.error = std::move(error);
  return chunk;
}

// Cuts the input into chunks of about `chunk_bytes`, never inside a line.
class ChunkReader {
 public:
  ChunkReader(const std::filesystem::path& path, int64_t chunk_bytes) : path_(path), chunk_bytes_(chunk_bytes) {
    file_.open(path, std::ios::binary);
    if (!file_) throw Error("--input '" + path.string() + "' cannot be opened; check the path and its permissions");
  }

  std::optional<TextChunk> next() {
    TextChunk chunk{next_index_, next_line_, std::move(carry_)};
    carry_.clear();
    size_t line_end = std::string::npos;
    // Read until the chunk holds a whole line (a line may exceed chunk_bytes).
    while (line_end == std::string::npos && !file_.eof()) {
      const size_t old_size = chunk.text.size();
      chunk.text.resize(old_size + size_t(chunk_bytes_));
      file_.read(chunk.text.data() + old_size, std::streamsize(chunk_bytes_));
      chunk.text.resize(old_size + size_t(file_.gcount()));
      if (file_.bad()) throw Error("reading --input '" + path_.string() + "' failed; check the file and the disk");
      line_end = chunk.text.rfind('\n');
    }
    if (!file_.eof()) {
      carry_.assign(chunk.text, line_end + 1);
      chunk.text.resize(line_end + 1);
    }
    if (chunk.text.empty()) return std::nullopt;
    ++next_index_;
    next_line_ += std::count(chunk.text.begin(), chunk.text.end(), '\n');
    return chunk;
  }

 private:
  std::filesystem::path path_;
  int64_t chunk_bytes_;
  std::ifstream file_;
  std::string carry_;  // the start of a line cut by the last read
  int64_t next_index_ = 0;
  int64_t next_line_ = 1;
};

// Chunks on their way from the reader through the workers to the writer.
// Every wait also ends on stop(), so whichever side fails can end the run.
class ChunkQueues {
 public:
  explicit ChunkQueues(int64_t max_in_flight) : max_in_flight_(max_in_flight) {}

  // Reader: waits while max_in_flight chunks are read but not yet written.
  bool push_text(TextChunk chunk) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return stopping_ || in_flight_ < max_in_flight_; });
    if (stopping_) return false;
    ++in_flight_;
    text_.push_back(std::move(chunk));
    changed_.notify_all();
    return true;
  }

  // Reader: no chunk follows `chunk_count - 1`.
  void close_input(int64_t chunk_count) {
    std::lock_guard lock(mutex_);
    chunk_count_ = chunk_count;
    changed_.notify_all();
  }

  // Workers: the next chunk to encode; none once the input is exhausted or the run stops.
  std::optional<TextChunk> pop_text() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return stopping_ || !text_.empty() || chunk_count_ >= 0; });
    if (stopping_ || text_.empty()) return std::nullopt;
    TextChunk chunk = std::move(text_.front());
    text_.pop_front();
    return chunk;
  }

  void push_encoded(int64_t index, EncodedChunk chunk) {
    std::lock_guard lock(mutex_);
    encoded_.emplace(index, std::move(chunk));
    changed_.notify_all();
  }

  // Writer: chunk `index` once encoded, waiting at most `timeout`.
  enum class Wait { Ready, EndOfInput, TimedOut };
  Wait take_encoded(int64_t index, Clock::duration timeout, EncodedChunk& chunk) {
    std::unique_lock lock(mutex_);
    const bool woke = changed_.wait_for(lock, timeout, [&] { return encoded_.count(index) || chunk_count_ == index; });
    if (!woke) return Wait::TimedOut;
    if (!encoded_.count(index)) return Wait::EndOfInput;
    chunk = std::move(encoded_.at(index));
    encoded_.erase(index);
    --in_flight_;
    changed_.notify_all();
    return Wait::Ready;
  }

  void stop() {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;  // chunks are large, so one signal for every change is cheap
  std::deque<TextChunk> text_;
  std::map<int64_t, EncodedChunk> encoded_;  // out of order until the writer takes them
  int64_t max_in_flight_;
  int64_t in_flight_ = 0;
  int64_t chunk_count_ = -1;  // unknown until the reader reaches the end
  bool stopping_ = false;
};

// Stops the queues before the threads declared ahead of it are joined.
struct StopOnExit {
  ChunkQueues& queues;
  ~StopOnExit() { queues.stop(); }
};

struct LineEncoder {
  const PreprocessOptions& options;
  const Tokenizer& tokenizer;
  std::optional<int64_t> bos;  // put before every text, as Megatron's tokenize does
  std::optional<int64_t> eod;  // appended when options.append_eod

  void encode_text(std::string_view text, EncodedColumn& column, int64_t& tokens) const {
    const size_t begin = column.tokens.size();
    if (bos) column.tokens.push_back(*bos);  // even for an empty text, which is then not empty
    const std::vector<int64_t> ids = tokenizer.encode(text);
    column.tokens.insert(column.tokens.end(), ids.begin(), ids.end());
    const size_t length = column.tokens.size() - begin;
    if (length == 0) return;
    column.sequence_lengths.push_back(int32_t(length));
    tokens += int64_t(length);
  }

  // Throws what is wrong with the line; encode_chunk adds where it is.
  void encode_line(std::string_view line, EncodedChunk& chunk) const {
    const std::string example = "; each line must be one JSON object such as {\"" + options.json_keys.front() + "\": \"...\"}";
    nlohmann::json document;
    try {
      document = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(std::string("not valid JSON (") + e.what() + ")" + example);
    }
    if (!document.is_object()) throw Error(std::string("a JSON ") + document.type_name() + ", not an object" + example);
    for (size_t k = 0; k < options.json_keys.size(); ++k) {
      const std::string& key = options.json_keys[k];
      const auto value = document.find(key);
      if (value == document.end())
        throw Error("no key \"" + key + "\"; add it to every line or choose other --json-keys");
      EncodedColumn& column = chunk.columns[k];
      const size_t first_sequence = column.sequence_lengths.size();
      const auto is_string = [](const nlohmann::json& item) { return item.is_string(); };
      if (value->is_string()) {
        encode_text(value->get_ref<const std::string&>(), column, chunk.tokens);
      } else if (value->is_array() && std::all_of(value->begin(), value->end(), is_string)) {
        // Sentences split beforehand: one sequence each, as Megatron.
        for (const auto& sentence : *value) encode_text(sentence.get_ref<const std::string&>(), column, chunk.tokens);
      } else {
        throw Error("key \"" + key + "\" holds a JSON " + value->type_name() +
                    "; it must be a string or a list of strings");
      }
      const size_t sequences = column.sequence_lengths.size() - first_sequence;
      if (sequences > 0 && eod) {
        column.tokens.push_back(*eod);
        ++column.sequence_lengths.back();
        ++chunk.tokens;
      }
      column.sequences_per_document.push_back(int32_t(sequences));
    }
    ++chunk.documents;
  }

  EncodedChunk encode_chunk(const TextChunk& text) const {
    EncodedChunk chunk;
    chunk.columns.resize(options.json_keys.size());
    chunk.bytes = int64_t(text.text.size());
    int64_t line_number = text.first_line;
    for (size_t begin = 0; begin < text.text.size(); ++line_number) {
      const size_t newline = text.text.find('\n', begin);
      const size_t end = newline == std::string::npos ? text.text.size() : newline;
      try {
        encode_line(std::string_view(text.text).substr(begin, end - begin), chunk);
      } catch (const std::exception& e) {
        throw Error("--input '" + options.input.string() + "' line " + std::to_string(line_number) + ": " + e.what());
      }
      begin = end + 1;
    }
    return chunk;
  }
};

void append_documents(const EncodedColumn& column, IndexedDatasetBuilder& builder) {
  std::span<const int64_t> tokens(column.tokens);
  std::span<const int32_t> lengths(column.sequence_lengths);
  for (const int32_t sequences : column.sequences_per_document) {
    const auto document_lengths = lengths.first(size_t(sequences));
    int64_t document_tokens = 0;
    for (const int32_t length : document_lengths) document_tokens += length;
    builder.add_document(tokens.first(size_t(document_tokens)), document_lengths);
    tokens = tokens.subspan(size_t(document_tokens));
    lengths = lengths.subspan(size_t(sequences));
  }
}

void check_options(const PreprocessOptions& options, const Tokenizer& tokenizer) {
  if (options.output_prefix.empty()) throw Error("--output-prefix is empty; name where the .bin/.idx pairs go");
  if (options.json_keys.empty()) throw Error("--json-keys is empty; name at least one key, e.g. --json-keys text");
  const std::set<std::string> distinct(options.json_keys.begin(), options.json_keys.end());
  if (distinct.size() != options.json_keys.size())
    throw Error("--json-keys names a key twice; each key writes its own pair, so list each once");
  if (options.workers < 1) throw Error("--workers " + std::to_string(options.workers) + " must be at least 1");
  if (options.chunk_bytes < 1) throw Error("chunk size " + std::to_string(options.chunk_bytes) + " must be positive");
  if (options.append_eod && !tokenizer.eod())
    throw Error("--append-eod: the tokenizer has no end-of-document token; drop --append-eod or use a tokenizer with one");
}

}  // namespace

std::filesystem::path preprocessed_prefix(const std::string& output_prefix, const std::string& key) {
  return std::filesystem::path(output_prefix + "_" + key + "_document");
}

PreprocessSummary preprocess_jsonl(const PreprocessOptions& options, const Tokenizer& tokenizer) {
  check_options(options, tokenizer);
  const auto start = Clock::now();
  ChunkReader reader(options.input, options.chunk_bytes);
  PreprocessSummary summary;
  summary.totals.input_bytes = int64_t(std::filesystem::file_size(options.input));
  std::vector<std::unique_ptr<IndexedDatasetBuilder>> builders;
  for (const std::string& key : options.json_keys) {
    summary.outputs.push_back(preprocessed_prefix(options.output_prefix, key));
    builders.push_back(std::make_unique<IndexedDatasetBuilder>(summary.outputs.back(),
                                                               token_dtype_for_vocabulary(tokenizer.vocab_size())));
  }
  const LineEncoder encoder{options, tokenizer, tokenizer.bos(), options.append_eod ? tokenizer.eod() : std::nullopt};
  const auto interrupted = [&] { return options.interrupted && options.interrupted->load(); };
  const auto report = [&] {
    summary.totals.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (options.on_progress) options.on_progress(summary.totals);
  };

  // Enough chunks in flight to keep every worker busy while the writer waits on the oldest.
  ChunkQueues queues(2 * int64_t(options.workers) + 2);
  std::vector<std::jthread> threads;
  const StopOnExit stop_on_exit{queues};
  threads.emplace_back([&] {
    int64_t index = 0;
    try {
      while (auto chunk = reader.next()) {
        if (!queues.push_text(std::move(*chunk))) return;
        ++index;
      }
    } catch (const std::exception&) {
      queues.push_encoded(index, failed_chunk(std::current_exception()));
      ++index;
    }
    queues.close_input(index);
  });
  for (int w = 0; w < options.workers; ++w)
    threads.emplace_back([&] {
      while (auto text = queues.pop_text()) {
        EncodedChunk encoded;
        try {
          encoded = encoder.encode_chunk(*text);
        } catch (const std::exception&) {
          encoded = failed_chunk(std::current_exception());
        }
        queues.push_encoded(text->index, std::move(encoded));
      }
    });

  // Written in input order, so an error reported is always the first bad line.
  constexpr auto kInterruptPoll = std::chrono::milliseconds(100);
  for (int64_t index = 0;;) {
    if (interrupted()) {
      summary.interrupted = true;
      return summary;  // the builders' destructors remove their temporaries
    }
    EncodedChunk chunk;
    const ChunkQueues::Wait wait = queues.take_encoded(index, kInterruptPoll, chunk);
    if (wait == ChunkQueues::Wait::TimedOut) continue;
    if (wait == ChunkQueues::Wait::EndOfInput) break;
    if (chunk.error) std::rethrow_exception(chunk.error);
    for (size_t k = 0; k < builders.size(); ++k) append_documents(chunk.columns[k], *builders[k]);
    summary.totals.documents += chunk.documents;
    summary.totals.tokens += chunk.tokens;
    summary.totals.bytes_read += chunk.bytes;
    report();
    ++index;
  }
  for (auto& builder : builders) builder->finalize();
  report();
  return summary;
}

}  // namespace moebench::data
