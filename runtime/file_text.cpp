#include "runtime/file_text.hpp"

#include <fstream>
#include <sstream>

namespace actorserve {

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace actorserve
