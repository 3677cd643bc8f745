// net/front.hpp — one way requests come into a node (HTTP, gRPC, a Redis stream), as `serve`
// drives it: start (bind, announce where), begin a drain, count what is in flight, stop. Each
// front registers a factory from a file of its own that the executable links only where the front
// is built (as backends register: see runtime/model_backend.hpp), so no code asks which were.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace actorserve {

class inference;
struct deployment_config;

class front {
public:
  virtual ~front() = default;

  /// Binds its address (port 0: any free one) and starts serving. Returns what the node prints
  /// about it on stdout ("listening on http://IP:PORT"; empty: nothing), or why it cannot serve.
  virtual caf::expected<std::string> start() = 0;

  /// The start of a graceful stop: no new requests are taken; those already taken go on to
  /// their answers.
  virtual void begin_drain() = 0;

  /// Requests taken and not yet answered.
  virtual std::size_t in_flight() const = 0;

  /// Stops serving and joins its threads. Idempotent.
  virtual void stop() = 0;
};

/// The fronts of one kind a deployment asks for (none, one, or one per configured queue).
using front_factory =
  std::function<std::vector<std::unique_ptr<front>>(const std::shared_ptr<inference>&)>;

struct front_kind {
  std::string name; ///< "http", "grpc", "queues"
  /// Fronts start by rank, lowest first. The HTTP front ranks last: its "listening on" line is
  /// what scripts wait for, so every other front is up by then.
  int rank = 0;
  front_factory make;
};

class front_registry {
public:
  static front_registry& global();
  void add(front_kind kind);
  bool has(std::string_view name) const;
  /// Every kind, by rank.
  const std::vector<front_kind>& kinds() const { return kinds_; }

private:
  std::vector<front_kind> kinds_;
};

/// Registers a front from a static initializer: `static front_registrar reg{{"grpc", 10, f}};`
struct front_registrar {
  explicit front_registrar(front_kind kind);
};

/// The first option of `cfg` whose front `built` lacks (server.grpc without a gRPC front,
/// server.queues without the queue ingress), as an error that names it; none when all are there.
caf::error missing_front(const deployment_config& cfg, const front_registry& built);

} // namespace actorserve
