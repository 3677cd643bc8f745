// The inference path the HTTP front and the event-queue ingress share: a decoded KServe request
// is answered from its model's response cache where it can be, else by the gateway; its outcome
// is counted in the model's metrics. Thread-safe: any I/O thread submits.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "actors/handle_cell.hpp"
#include "actors/interfaces.hpp"
#include "actors/model_directory.hpp"
#include "net/infer_asker.hpp"
#include "net/kserve/json_codec.hpp"
#include "runtime/config.hpp"
#include "runtime/metrics.hpp"
#include "runtime/response_cache.hpp"

namespace actorserve {

/// Extra time the front waits beyond a request's own deadline: the batcher answers at the
/// deadline itself, so this only matters if an actor is lost.
constexpr auto bridge_grace = std::chrono::seconds(2);

class inference {
public:
  inference(caf::actor_system& sys, std::shared_ptr<handle_cell<gateway_actor>> gateway,
            std::shared_ptr<model_directory> directory,
            std::shared_ptr<const deployment_config> cfg, std::shared_ptr<metrics> stats);

  /// What encoding a request's answer needs: all of its decoded_request but the request.
  using options_ptr = std::shared_ptr<kserve::decoded_request>;
  using done_fn = std::function<void(caf::expected<infer_response>)>;

  /// Moves the answer's options out of `decoded` (leaving its request), with the classification
  /// outputs resolved against `model`'s labels.
  options_ptr take_options(kserve::decoded_request& decoded, const std::string& model) const;

  /// Answers `req` (its model and version set; version "" = any) and calls `done` exactly once:
  /// right away, on this thread, when the model's response cache has its answer (and then sets
  /// `options->cache_hit`) or the request cannot go on (actors/request_routing.hpp says why);
  /// else on a CAF thread once its model's batcher (a pipeline: the gateway) answers, or on the
  /// asker's timer thread once the request's timeout (its own, or the model's default) and a
  /// grace period pass. The request goes straight to the batcher's mailbox from this thread. The
  /// model's in-flight gauge counts it meanwhile.
  void submit(infer_request req, const options_ptr& options, done_fn done);

  /// The model (and version: "" = its only one) a call names, or model_not_found naming what
  /// is unknown: the fronts' answer to a metadata, configuration or statistics request.
  caf::expected<const model_config*> addressed(const std::string& model,
                                               const std::string& version) const;

  /// The request's timeout: its own, or its model's default.
  std::chrono::microseconds timeout_of(const infer_request& req) const;

  /// Counts a finished request of a model (nothing for `mm` nullptr, an unknown model): its
  /// outcome, its latency since `received`, Triton's statistics.
  static void account(model_metrics* mm, errc outcome,
                      std::chrono::steady_clock::time_point received);

  /// Empties the model's response cache (it was unloaded or loaded again).
  void clear_cache(const std::string& model);

  caf::actor_system& system() const { return sys_; }
  const std::shared_ptr<handle_cell<gateway_actor>>& gateway() const { return gateway_; }
  const std::shared_ptr<const deployment_config>& config() const { return cfg_; }
  const std::shared_ptr<metrics>& stats() const { return stats_; }

private:
  /// The same, with the request's model already found (nullptr: unknown).
  static std::chrono::microseconds timeout_of(const infer_request& req, const model_config* m);
  response_cache* cache(const std::string& model) const;

  /// Sends a routed request on (to `dest`: its batcher, or the gateway) and counts it in flight.
  void send(const caf::strong_actor_ptr& dest, infer_request req,
            infer_asker::clock::time_point give_up, model_metrics* mm, done_fn done);

  caf::actor_system& sys_;
  std::shared_ptr<handle_cell<gateway_actor>> gateway_;
  std::shared_ptr<model_directory> directory_;
  std::shared_ptr<const deployment_config> cfg_;
  std::shared_ptr<metrics> stats_;
  std::unordered_map<std::string, std::unique_ptr<response_cache>> caches_; // fixed after start
  infer_asker asker_; // (last: destroyed first, answering what is pending while all else is here)
};

/// The KServe v2 and Triton extensions a front announces in its server metadata; the system
/// shared memory one only where it serves it (HTTP, with http.allow_shared_memory).
std::vector<std::string_view> server_extensions(bool shared_memory);

} // namespace actorserve
