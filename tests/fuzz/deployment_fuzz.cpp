// The deployment-file reader on any text: a configuration or an error naming what is wrong,
// never a crash. (Paths resolve against a folder that does not exist, so no file is read.)
#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace actorserve;
  std::string text(reinterpret_cast<const char*>(data), size);
  auto cfg = parse_deployment(text, "/nonexistent-actorserve-fuzz", {"scale", "torchscript"});
  (void)cfg;
  return 0;
}
