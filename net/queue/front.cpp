// Registers the event-queue ingress, linked where it is built: one per server.queues entry.
#include "net/queue/redis_ingress.hpp"

namespace actorserve {
namespace {

std::vector<std::unique_ptr<front>> make_queues(const std::shared_ptr<inference>& infer) {
  std::vector<std::unique_ptr<front>> fronts;
  for (auto& q : infer->config()->server.queues)
    fronts.push_back(std::make_unique<redis_ingress>(infer, q));
  return fronts;
}

const front_registrar queue_fronts{{"queues", 20, make_queues}};

} // namespace
} // namespace actorserve
