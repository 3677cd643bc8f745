// actors/supervisor.hpp — the root of the actor tree: spawns the gateway, one batcher per model
// and `instances` workers per model per device; monitors the workers and restarts a crashed one
// with exponential backoff, within the model's restart-intensity limit (then it gives that
// worker up, says so in the log, and the model reports not ready once no worker is left).
#pragma once

#include <memory>

#include <caf/actor_system.hpp>
#include <caf/typed_actor.hpp>

#include "actors/interfaces.hpp"
#include "runtime/config.hpp"
#include "runtime/metrics.hpp"

namespace actorserve {

using supervisor_actor = caf::typed_actor<
  caf::replies_to<gateway_atom>::with<gateway_actor>,
  caf::reacts_to<restart_atom, uint32_t>,   // internal: restart worker slot N after its backoff
  caf::reacts_to<worker_hung_atom, std::string>>; // from a batcher: replace this worker now

/// `stats` (may be null) is handed to batchers and workers, and records worker states and restarts.
supervisor_actor spawn_supervisor(caf::actor_system& sys,
                                  std::shared_ptr<const deployment_config> cfg,
                                  std::shared_ptr<metrics> stats);

} // namespace actorserve
