// The KServe v2 request decoder (JSON, and JSON followed by binary tensor data) on any bytes:
// the first two bytes, when the first is odd, give the JSON part's length (the
// Inference-Header-Content-Length header); the rest is the body. It must answer a decoded request
// or an error, within the memory budget, and never crash or read out of bounds.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "net/kserve/json_codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace actorserve;
  std::optional<std::size_t> json_length;
  if (size >= 3 && (data[0] & 1)) {
    json_length = (std::size_t{data[1]} << 8) | data[2];
    data += 3;
    size -= 3;
  } else if (size >= 1) {
    data += 1;
    size -= 1;
  }
  std::string_view body(reinterpret_cast<const char*>(data), size);
  std::atomic<uint64_t> used{0};
  kserve::memory_budget budget{&used, 1u << 24, 0};
  auto r = kserve::decode_request(body, json_length, nullptr, &budget, nullptr);
  if (r) // what was decoded holds together
    for (auto& t : r->request.inputs)
      if (!t.consistent())
        __builtin_trap();
  return 0;
}
