// Event-queue ingress: inference requests from a Redis stream (server.queues[]). Entries are read
// through a consumer group, so the nodes sharing it divide the work; each is answered on a reply
// stream and acknowledged only once its answer is written. An entry whose node fails before that
// stays pending and is taken over by another node of the group after claim_idle_ms (or by this
// one, on its next start under the same consumer name): at least once, never lost. Entries
// delivered max_deliveries times without an answer are answered with an error and not run again
// (a request that kills its node cannot take down the group one node after another).
//
// Threads of its own, like the HTTP server's I/O threads: a reader blocked in XREADGROUP (never
// more than max_in_flight entries unanswered), a writer that writes answers, acknowledgements
// and deletions in one MULTI/EXEC per batch, and one that decodes entries and encodes answers.
// Requests go through the same inference path as HTTP's (validation, response cache, metrics).
#pragma once

#include <cstddef>
#include <memory>

#include "net/front.hpp"
#include "net/inference.hpp"
#include "runtime/config.hpp"

namespace actorserve {

class redis_ingress final : public front {
public:
  redis_ingress(std::shared_ptr<inference> infer, queue_config cfg);
  ~redis_ingress() override; // stop()

  /// Starts its threads; they connect to Redis (and reconnect, with backoff) on their own, and
  /// read entries once the queue's model (or, without one, every model) is ready.
  caf::expected<std::string> start() override;

  /// Reads no more entries; those already read go on to their answers.
  void begin_drain() override;

  /// Entries read whose answer is not yet written (and acknowledged).
  std::size_t in_flight() const override;

  /// Stops its threads. Entries not yet answered stay pending in Redis for the group.
  void stop() override;

  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

} // namespace actorserve
