// The KServe v2 gRPC front (server.grpc): liveness, readiness, metadata and inference over
// gRPC's callback API, so that KServe's and NVIDIA Triton's gRPC clients work. Requests go the
// HTTP front's way (net/inference: validation by the gateway, response cache, metrics); a
// call's gRPC deadline becomes its request's timeout and a cancelled call is dropped before it
// runs. Nothing here blocks a gRPC thread: answers come from CAF threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include <caf/expected.hpp>

#include "net/front.hpp"
#include "net/inference.hpp"

namespace actorserve {

class grpc_server final : public front {
public:
  explicit grpc_server(std::shared_ptr<inference> infer);
  ~grpc_server() override; // stop()

  /// Binds server.grpc's address and port (0 = any free one) and starts serving. Announces
  /// "grpc on IP:PORT" (and whether with TLS).
  caf::expected<std::string> start() override;

  /// New calls are answered UNAVAILABLE ("shutting down"), readiness false; calls already
  /// accepted go on to their answers.
  void begin_drain() override;

  /// Inference calls accepted and not yet answered.
  std::size_t in_flight() const override;

  /// Stops serving (calls still running are cancelled after a short grace).
  void stop() override;

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

} // namespace actorserve
