#include "net/front.hpp"

#include <algorithm>

#include "runtime/config.hpp"
#include "runtime/error.hpp"

namespace actorserve {

front_registry& front_registry::global() {
  static front_registry registry;
  return registry;
}

void front_registry::add(front_kind kind) {
  auto at = std::upper_bound(kinds_.begin(), kinds_.end(), kind.rank,
                             [](int rank, const front_kind& k) { return rank < k.rank; });
  kinds_.insert(at, std::move(kind));
}

bool front_registry::has(std::string_view name) const {
  return std::any_of(kinds_.begin(), kinds_.end(),
                     [&](const front_kind& k) { return k.name == name; });
}

front_registrar::front_registrar(front_kind kind) {
  front_registry::global().add(std::move(kind));
}

namespace {

/// A deployment option that needs a front a build may lack, and what to say when it does.
struct optional_front {
  const char* front;
  bool (*asked)(const deployment_config&);
  const char* missing;
};

const optional_front optional_fronts[] = {
  {"grpc", [](const deployment_config& c) { return c.server.grpc.enabled; },
   "server.grpc is set but this build has no gRPC front (built without gRPC and protobuf, "
   "libgrpc++-dev, or with ACTORSERVE_WITH_GRPC off)"},
  {"queues", [](const deployment_config& c) { return !c.server.queues.empty(); },
   "server.queues is set but this build has no event-queue ingress (built without hiredis, "
   "libhiredis-dev, or with ACTORSERVE_WITH_QUEUES off)"},
};

} // namespace

caf::error missing_front(const deployment_config& cfg, const front_registry& built) {
  for (auto& o : optional_fronts)
    if (o.asked(cfg) && !built.has(o.front))
      return make_error(errc::invalid_config, o.missing);
  return {};
}

} // namespace actorserve
