// Registers the gRPC front, linked where it is built; it serves where server.grpc is set.
#include "net/grpc/server.hpp"

namespace actorserve {
namespace {

std::vector<std::unique_ptr<front>> make_grpc(const std::shared_ptr<inference>& infer) {
  std::vector<std::unique_ptr<front>> fronts;
  if (infer->config()->server.grpc.enabled)
    fronts.push_back(std::make_unique<grpc_server>(infer));
  return fronts;
}

const front_registrar grpc_front{{"grpc", 10, make_grpc}};

} // namespace
} // namespace actorserve
