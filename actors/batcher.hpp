// actors/batcher.hpp — one per model: queues admitted requests (bounded), forms batches with the
// pure batch_queue policy, dispatches them to ready workers (one batch in flight per worker),
// and answers every request exactly once: with its outputs, or with an error when its deadline
// passes (queued or in flight), when its batch fails, or when its worker dies.
#pragma once

#include <memory>

#include <caf/actor_system.hpp>

#include "actors/handle_cell.hpp"
#include "actors/interfaces.hpp"
#include "actors/model_directory.hpp"
#include "runtime/config.hpp"
#include "runtime/metrics.hpp"

namespace actorserve {

/// The batcher registers itself in `directory` and reports the model's worker counts there
/// whenever they change (and clears its entry when it stops); `stats` (may be null) receives
/// queue depth, queue times, batch sizes and compute times; the actor in `workers_supervisor`
/// (may be null or empty) is told `worker_hung_atom` when a worker's batch outlives
/// execution_timeout_ms.
/// Batches that fail because of their worker are retried on another worker (retry.max_retries);
/// each worker has a circuit breaker (breaker.*). `local_workers` false: a cluster front, whose
/// workers all come from worker nodes (autoscaling then only says how many it wants).
batcher_actor spawn_batcher(caf::actor_system& sys, std::shared_ptr<const model_config> model,
                            std::shared_ptr<model_directory> directory,
                            std::shared_ptr<metrics> stats,
                            std::shared_ptr<handle_cell<caf::actor>> workers_supervisor = {},
                            bool local_workers = true);

} // namespace actorserve
