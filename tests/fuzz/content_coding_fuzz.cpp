// Content decoding (gzip and deflate request bodies) on any bytes: the first byte picks the
// coding; the output is bounded (a small body that inflates far is refused), never a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "net/http/content_coding.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace actorserve;
  if (size == 0)
    return 0;
  auto coding = (data[0] & 1) ? content_coding::gzip : content_coding::deflate;
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  constexpr std::size_t limit = 1 << 20;
  auto r = decode_content(body, coding, limit);
  if (r && r->size > limit)
    __builtin_trap();
  return 0;
}
