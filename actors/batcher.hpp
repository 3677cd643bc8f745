// actors/batcher.hpp — one per model: queues admitted requests (bounded), forms batches with the
// pure batch_queue policy, dispatches them to ready workers (one batch in flight per worker),
// and answers every request exactly once: with its outputs, or with an error when its deadline
// passes (queued or in flight), when its batch fails, or when its worker dies.
#pragma once

#include <memory>

#include <caf/actor_system.hpp>

#include "actors/interfaces.hpp"
#include "runtime/config.hpp"
#include "runtime/metrics.hpp"

namespace actorserve {

/// `gateway` receives a model_status whenever the model's worker counts change; `stats` (may be
/// null) receives queue depth, queue times, batch sizes and compute times; `supervisor` (may be
/// null) is told `worker_hung_atom` when a worker's batch outlives execution_timeout_ms.
/// Batches that fail because of their worker are retried on another worker (retry.max_retries);
/// each worker has a circuit breaker (breaker.*).
batcher_actor spawn_batcher(caf::actor_system& sys, std::shared_ptr<const model_config> model,
                            gateway_actor gateway, std::shared_ptr<metrics> stats,
                            caf::actor supervisor = {});

} // namespace actorserve
