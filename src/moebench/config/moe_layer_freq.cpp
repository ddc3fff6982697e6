#include "moebench/config/moe_layer_freq.h"

#include <cctype>
#include <string>

#include "moebench/core/error.h"

namespace moebench::config {
namespace {

// Recursive descent over: expr := term ('+' term)*; term := atom ('*' int)?;
// atom := '[' int (',' int)* ']' | '(' expr ')'.
class PatternParser {
 public:
  explicit PatternParser(std::string_view text) : text_(text) {}

  std::vector<int> parse() {
    std::vector<int> pattern = expression();
    skip_spaces();
    if (pos_ != text_.size()) fail("unexpected '" + std::string(1, text_[pos_]) + "'");
    return pattern;
  }

 private:
  std::vector<int> expression() {
    std::vector<int> out = term();
    while (accept('+')) {
      std::vector<int> more = term();
      out.insert(out.end(), more.begin(), more.end());
    }
    return out;
  }

  std::vector<int> term() {
    std::vector<int> base = atom();
    if (!accept('*')) return base;
    int repeat = integer();
    std::vector<int> out;
    for (int i = 0; i < repeat; ++i) out.insert(out.end(), base.begin(), base.end());
    return out;
  }

  std::vector<int> atom() {
    if (accept('(')) {
      std::vector<int> inner = expression();
      expect(')');
      return inner;
    }
    expect('[');
    std::vector<int> items{integer()};
    while (accept(',')) items.push_back(integer());
    expect(']');
    return items;
  }

  int integer() {
    skip_spaces();
    size_t start = pos_;
    while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    if (start == pos_) fail("expected a number");
    if (pos_ - start > 6) fail("number too large");
    return std::stoi(std::string(text_.substr(start, pos_ - start)));
  }

  void skip_spaces() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool accept(char c) {
    skip_spaces();
    if (pos_ < text_.size() && text_[pos_] == c) return ++pos_, true;
    return false;
  }
  void expect(char c) {
    if (!accept(c)) fail(std::string("expected '") + c + "'");
  }
  [[noreturn]] void fail(const std::string& what) {
    throw Error("--moe-layer-freq '" + std::string(text_) + "': " + what + " at position " + std::to_string(pos_) +
                "; write an integer or a list such as ([0]+[1]*26)");
  }

  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

std::vector<bool> parse_moe_layer_freq(std::string_view text, int num_layers) {
  bool is_integer = !text.empty();
  for (char c : text) is_integer = is_integer && std::isdigit(static_cast<unsigned char>(c));
  std::vector<bool> is_moe(num_layers);
  if (is_integer) {
    if (text.size() > 6) throw Error("--moe-layer-freq " + std::string(text) + " is too large; give a layer interval");
    int every = std::stoi(std::string(text));
    if (every < 1) throw Error("--moe-layer-freq " + std::string(text) + " must be at least 1");
    for (int i = 0; i < num_layers; ++i) is_moe[i] = i % every == 0;
    return is_moe;
  }
  std::vector<int> pattern = PatternParser(text).parse();
  if (static_cast<int>(pattern.size()) != num_layers)
    throw Error("--moe-layer-freq '" + std::string(text) + "' has " + std::to_string(pattern.size()) +
                " entries but --num-layers is " + std::to_string(num_layers) + "; give one 0/1 per layer");
  for (int i = 0; i < num_layers; ++i) {
    if (pattern[i] != 0 && pattern[i] != 1)
      throw Error("--moe-layer-freq entries must be 0 or 1, got " + std::to_string(pattern[i]));
    is_moe[i] = pattern[i] == 1;
  }
  return is_moe;
}

}  // namespace moebench::config
