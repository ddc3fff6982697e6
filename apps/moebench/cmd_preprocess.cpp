// `moebench preprocess`: Megatron-LM's tools/preprocess_data.py, JSONL in,
// one .bin/.idx pair per JSON key out, with the same flags.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "moebench/core/error.h"
#include "moebench/data/preprocess.h"
#include "moebench/data/tokenizer.h"

namespace moebench::cli {
namespace {

struct PreprocessFlags {
  data::PreprocessOptions run;
  data::TokenizerOptions tokenizer;
  long long log_interval = 100;
  bool split_sentences = false;
};

// Ctrl-C asks the run to stop between chunks and write nothing; the handler
// resets itself, so a second Ctrl-C ends the process at once.
class SigintFlag {
 public:
  SigintFlag() {
    raised_ = false;
    struct sigaction action {};
    action.sa_handler = [](int) { raised_ = true; };
    action.sa_flags = SA_RESETHAND;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &previous_);
  }
  ~SigintFlag() { sigaction(SIGINT, &previous_, nullptr); }
  SigintFlag(const SigintFlag&) = delete;
  SigintFlag& operator=(const SigintFlag&) = delete;
  const std::atomic<bool>* flag() const { return &raised_; }

 private:
  static_assert(std::atomic<bool>::is_always_lock_free, "a signal handler may only set a lock-free atomic");
  static inline std::atomic<bool> raised_{false};
  struct sigaction previous_ {};
};

double megabytes_per_second(const data::PreprocessProgress& p) { return p.seconds > 0 ? p.bytes_read / 1e6 / p.seconds : 0; }
double tokens_per_second(const data::PreprocessProgress& p) { return p.seconds > 0 ? p.tokens / p.seconds : 0; }

// On a terminal a progress bar on stderr, redrawn a few times a second;
// otherwise Megatron's line every --log-interval documents.
class ProgressReport {
 public:
  ProgressReport(bool terminal, long long log_interval) : terminal_(terminal), log_interval_(log_interval) {}
  ~ProgressReport() { finish(); }
  ProgressReport(const ProgressReport&) = delete;
  ProgressReport& operator=(const ProgressReport&) = delete;

  void operator()(const data::PreprocessProgress& p) {
    if (terminal_) return draw_bar(p);
    if (p.documents / log_interval_ == logged_ / log_interval_) return;
    logged_ = p.documents;
    std::fprintf(stderr, "Processed %lld documents (%.1f docs/s, %.2f MB/s).\n", (long long)p.documents,
                 p.seconds > 0 ? p.documents / p.seconds : 0.0, megabytes_per_second(p));
  }

  // Clears the bar, so that what follows starts on a clean line.
  void finish() {
    if (drawn_) std::fprintf(stderr, "\r\033[K");
    drawn_ = false;
  }

 private:
  void draw_bar(const data::PreprocessProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    const bool done = p.bytes_read == p.input_bytes;
    if (!done && drawn_ && now - last_draw_ < std::chrono::milliseconds(200)) return;
    last_draw_ = now;
    drawn_ = true;
    constexpr int kWidth = 30;
    const double fraction = p.input_bytes > 0 ? double(p.bytes_read) / double(p.input_bytes) : 1.0;
    const int filled = int(fraction * kWidth);
    std::fprintf(stderr, "\r[%s%s] %3d%%  %lld docs  %.1f MB/s  %.3g tokens/s ", std::string(size_t(filled), '#').c_str(),
                 std::string(size_t(kWidth - filled), '.').c_str(), int(fraction * 100), (long long)p.documents,
                 megabytes_per_second(p), tokens_per_second(p));
    std::fflush(stderr);
  }

  bool terminal_;
  long long log_interval_;
  long long logged_ = 0;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_;
};

int run_preprocess(PreprocessFlags flags) {
  if (flags.split_sentences)
    throw Error("--split-sentences is not supported; split sentences beforehand and give each key a list of strings "
                "(one sequence each)");
  if (flags.log_interval < 1) throw Error("--log-interval " + std::to_string(flags.log_interval) + " must be positive");
  const std::unique_ptr<data::Tokenizer> tokenizer = data::make_tokenizer(flags.tokenizer);
  const SigintFlag sigint;
  ProgressReport progress(::isatty(STDERR_FILENO) == 1, flags.log_interval);
  flags.run.interrupted = sigint.flag();
  flags.run.on_progress = [&progress](const data::PreprocessProgress& p) { progress(p); };
  const data::PreprocessSummary summary = data::preprocess_jsonl(flags.run, *tokenizer);
  progress.finish();
  if (summary.interrupted) {
    std::fprintf(stderr, "moebench preprocess: interrupted after %lld documents; no output written\n",
                 (long long)summary.totals.documents);
    return 130;  // 128 + SIGINT, as a shell reports it
  }
  const data::PreprocessProgress& t = summary.totals;
  std::printf("preprocess: %lld documents, %lld tokens, %.3g MB in %.3g s: %.2f MB/s, %.0f tokens/s (%d workers)\n",
              (long long)t.documents, (long long)t.tokens, t.bytes_read / 1e6, t.seconds, megabytes_per_second(t),
              tokens_per_second(t), flags.run.workers);
  for (const auto& prefix : summary.outputs) std::printf("wrote %s.bin and .idx\n", prefix.c_str());
  return 0;
}

}  // namespace

void add_preprocess_command(CLI::App& app, Action& action) {
  auto flags = std::make_shared<PreprocessFlags>();
  auto* command = app.add_subcommand(
      "preprocess", "tokenize a JSONL corpus into Megatron .bin/.idx pairs, as tools/preprocess_data.py");
  command->add_option("--input", flags->run.input, "JSONL file, one JSON object (document) per line")->required();
  command->add_option("--output-prefix", flags->run.output_prefix,
                      "writes <prefix>_<key>_document.bin/.idx for each JSON key")
      ->required();
  command->add_option("--json-keys", flags->run.json_keys, "keys to tokenize, one pair each")->capture_default_str();
  command->add_option("--tokenizer-type", flags->tokenizer.type, "HuggingFaceTokenizer, Llama2Tokenizer or NullTokenizer")
      ->required();
  command->add_option("--tokenizer-model", flags->tokenizer.model, "tokenizer.json, its directory, or a .model file");
  command->add_option("--vocab-size", flags->tokenizer.vocab_size, "vocabulary size (NullTokenizer)");
  command->add_flag("--append-eod", flags->run.append_eod, "end every document with the end-of-document token");
  command->add_option("--workers", flags->run.workers, "tokenizing threads")->capture_default_str();
  command->add_option("--log-interval", flags->log_interval, "documents between progress lines when not on a terminal")
      ->capture_default_str();
  command->add_flag("--split-sentences", flags->split_sentences, "not supported (give lists of sentences instead)");
  command->callback([flags, &action] { action = [flags] { return run_preprocess(*flags); }; });
}

}  // namespace moebench::cli
