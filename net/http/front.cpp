// Registers the HTTP front (always built; every node serves it).
#include "net/http/server.hpp"

namespace actorserve {
namespace {

std::vector<std::unique_ptr<front>> make_http(const std::shared_ptr<inference>& infer) {
  std::vector<std::unique_ptr<front>> fronts;
  fronts.push_back(std::make_unique<http_server>(infer));
  return fronts;
}

const front_registrar http_front{{"http", 100, make_http}};

} // namespace
} // namespace actorserve
