// The KServe v2 REST front: an asynchronous Boost.Beast server on its own I/O threads. It parses
// and encodes on those threads and talks to the gateway actor by message; nothing here blocks a
// CAF thread and nothing in CAF blocks an I/O thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "net/front.hpp"
#include "net/inference.hpp"

namespace actorserve {

class http_server final : public front {
public:
  /// Serves `infer`'s deployment through it; its metrics count requests by outcome and latency,
  /// and back GET /metrics and the statistics endpoints.
  explicit http_server(std::shared_ptr<inference> infer);
  ~http_server() override;

  /// Binds the configured address and port (0 = any free port) and starts the I/O threads.
  /// Announces "listening on http[s]://IP:PORT".
  caf::expected<std::string> start() override;

  /// The start of a graceful stop: closes the listening socket; from now on readiness and new
  /// requests are answered 503 ("shutting down") and every response closes its connection,
  /// while the requests already read go on to their answers.
  void begin_drain() override;

  /// Requests read and not yet answered (their response not yet written).
  std::size_t in_flight() const override;

  /// Stops accepting, closes connections and joins the I/O threads.
  void stop() override;

  struct impl; // public so that the connection sessions in the .cpp can refer to it

private:
  std::unique_ptr<impl> impl_;
};

} // namespace actorserve
