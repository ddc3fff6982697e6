#include "moebench/config/envsubst.h"

#include <cctype>

namespace moebench::config {
namespace {

bool starts_name(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool continues_name(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

}  // namespace

std::string envsubst(std::string_view text, const VariableLookup& lookup) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (text[i] != '$' || i + 1 == text.size()) {
      out += text[i++];
      continue;
    }
    size_t begin = i + 1, end = begin;
    bool braced = text[begin] == '{';
    if (braced) {
      ++begin;
      end = begin;
      while (end < text.size() && continues_name(text[end])) ++end;
      // "${" not closed by "}" right after a name is left alone, as envsubst does.
      if (end == begin || end == text.size() || text[end] != '}' || !starts_name(text[begin])) {
        out += text[i++];
        continue;
      }
    } else {
      if (!starts_name(text[begin])) {
        out += text[i++];
        continue;
      }
      while (end < text.size() && continues_name(text[end])) ++end;
    }
    out += lookup(text.substr(begin, end - begin)).value_or("");
    i = braced ? end + 1 : end;
  }
  return out;
}

}  // namespace moebench::config
