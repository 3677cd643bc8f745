// actors/worker.hpp — one model instance on one device. Runs as a detached actor (its own
// thread), so loading, warm-up and inference block nothing else. After warm-up it tells its
// batcher it is ready; a batch that fails becomes batch_failed for exactly that batch.
#pragma once

#include <memory>
#include <string>

#include <caf/actor_system.hpp>

#include "actors/interfaces.hpp"
#include "runtime/config.hpp"
#include "runtime/metrics.hpp"
#include "runtime/shared_segment.hpp"

namespace actorserve {

struct worker_spec {
  std::shared_ptr<const model_config> model;
  std::string device = "cpu";
  uint32_t instance = 0;
  bool fault_injection = false; // honour infer_request::fault
  std::string node = {};         // set on a worker node of a cluster: its node name
  // An isolated worker's shared memory with its node, where batches' input bytes arrive
  // (batch_job::shm_spans); null elsewhere.
  std::shared_ptr<const shared_segment> batch_memory = {};

  /// "model/device/instance", e.g. "mlp/cpu/1" ("model/node/device/instance" on a worker node):
  /// how logs and responses name the worker.
  std::string name() const;
  /// The device part of such a name ("cpu" of "mlp/w1/cpu/0"; empty if it has none).
  static std::string device_of(const std::string& name);
};

/// `stats` (may be null) receives the worker's batches, compute times and readiness.
worker_actor spawn_worker(caf::actor_system& sys, const worker_spec& spec, batcher_actor batcher,
                          std::shared_ptr<metrics> stats);

} // namespace actorserve
