// actors/node_tree.hpp — the node's supervision tree, built from generic supervisors
// (actors/supervision.hpp) and the deployment file:
//
//   root (server.supervision: one_for_one by default)
//   ├── gateway                                   permanent
//   └── model <m>, one per model                  server.supervision.model_restart (temporary)
//       (rest_for_one, restart.model_max_restarts)
//       ├── batcher                               permanent
//       └── workers <m> (restart.strategy, restart.max_restarts within restart.period_s)
//           └── worker m/device/instance, ...     permanent, restart.shutdown_ms; with
//                                                 isolation "process", a worker-process actor
//                                                 owning the worker's child process
//
// A worker that crashes or hangs is restarted by its workers supervisor after a backoff; past that
// supervisor's intensity all the model's workers stop and the model supervisor restarts the
// workers subtree; past the model supervisor's intensity the model stops (its batcher answers
// what it holds) and the root applies model_restart: by default the model is down (503, not
// ready) while the node serves the others, and is started again after a crash-loop back-off
// (model_cooldown_ms, doubling up to model_cooldown_max_ms; 0: it stays down until a load). A batcher crash restarts the model's workers
// (they talk to it). Past the root's intensity the process exits with status 1.
#pragma once

#include <memory>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "actors/handle_cell.hpp"
#include "actors/interfaces.hpp"
#include "actors/model_directory.hpp"
#include "runtime/config.hpp"
#include "runtime/metrics.hpp"

namespace actorserve {

struct node_handles {
  caf::actor root;
  std::shared_ptr<handle_cell<gateway_actor>> gateway; // the current gateway (set once started)
  std::shared_ptr<model_directory> directory; // each model's current batcher and readiness
  std::vector<caf::actor> brokers; // isolated workers' and worker nodes' brokers: stop with root
};

/// `stats` (may be null) is handed to batchers and workers, and records worker states and restarts.
/// Models with `isolation: "process"` need the middleman loaded: their workers' broker is
/// published on a loopback port. The error says why the node could not start.
caf::expected<node_handles> spawn_node(caf::actor_system& sys,
                                       std::shared_ptr<const deployment_config> cfg,
                                       std::shared_ptr<metrics> stats);

} // namespace actorserve
