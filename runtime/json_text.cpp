#include "runtime/json_text.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/string_view.hpp>

namespace actorserve {

namespace {

/// The length of the valid UTF-8 sequence at s[i], or 0 when there is none (RFC 3629, table 3-7
/// of the Unicode standard: the second byte's range depends on the first).
std::size_t sequence_length(std::string_view s, std::size_t i) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  auto c0 = b(0);
  if (c0 < 0x80)
    return 1;
  std::size_t n;
  unsigned char lo = 0x80, hi = 0xBF; // the second byte's range
  if (c0 >= 0xC2 && c0 <= 0xDF)
    n = 2;
  else if (c0 >= 0xE0 && c0 <= 0xEF) {
    n = 3;
    if (c0 == 0xE0)
      lo = 0xA0; // overlong
    else if (c0 == 0xED)
      hi = 0x9F; // surrogates
  } else if (c0 >= 0xF0 && c0 <= 0xF4) {
    n = 4;
    if (c0 == 0xF0)
      lo = 0x90; // overlong
    else if (c0 == 0xF4)
      hi = 0x8F; // past U+10FFFF
  } else
    return 0;
  if (i + n > s.size() || b(1) < lo || b(1) > hi)
    return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (b(k) < 0x80 || b(k) > 0xBF)
      return 0;
  return n;
}

} // namespace

std::string valid_utf8(std::string_view s) {
  std::string out;
  std::size_t copied = 0; // s[0, copied) is in out
  for (std::size_t i = 0; i < s.size();) {
    if (auto n = sequence_length(s, i)) {
      i += n;
      continue;
    }
    out.append(s.substr(copied, i - copied));
    out.append("\xEF\xBF\xBD"); // U+FFFD for the one byte that starts no valid sequence
    copied = ++i;
  }
  if (copied == 0)
    return std::string(s);
  out.append(s.substr(copied));
  return out;
}

std::string json_quote(std::string_view s) {
  auto text = valid_utf8(s);
  return boost::json::serialize(boost::json::string_view(text.data(), text.size()));
}

} // namespace actorserve
