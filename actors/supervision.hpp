// actors/supervision.hpp — a generic supervisor, as Erlang/OTP's: child specs with a restart
// type and a shutdown timeout, a strategy (one_for_one, one_for_all, rest_for_one), restart
// intensity (more than max_restarts within period_s: stop every child and exit with
// errc::escalated, which its own supervisor sees as that child failing) and exponential backoff
// with jitter between restarts. Supervisors supervise supervisors by a child spec whose start
// spawns one; a child may have a crash-loop back-off. The node's tree (actors/node_tree.hpp) is
// built from these.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "runtime/config.hpp"
#include "runtime/supervision_policy.hpp"

namespace actorserve {

struct child_spec {
  std::string id; // unique among its siblings; logs and `worker_hung_atom` name it
  restart_type restart = restart_type::permanent;
  std::chrono::milliseconds shutdown{5000}; // after asking it to stop, wait this long, then kill
  /// Spawns the child. `parent` is the supervisor. Throwing std::exception counts as the child
  /// failing at once.
  std::function<caf::actor(caf::actor_system&, const caf::actor& parent)> start;
  /// Optional: the child is down (it failed, or was stopped by a strategy or at shutdown);
  /// `will_restart` says whether it comes back.
  std::function<void(bool will_restart, const std::string& why)> on_down = {};
  /// Not started with its supervisor: down, as if stopped on request (terminate_child), until
  /// restart_child starts it (an instance the autoscaler may add).
  bool start_held = false;
  /// Optional crash-loop back-off (runtime/restart_policy.hpp): a child that failed and that its
  /// restart type, or its supervisor's strategy, leaves down is started again after `cooldown`,
  /// doubling with each such failure in a row up to `cooldown_max`. 0: it stays down.
  std::chrono::milliseconds cooldown{0}, cooldown_max{0};
  /// Called instead of on_down(false, ...) when the child is down for a cool-down: the wait,
  /// the give-ups in a row and why it went down.
  std::function<void(std::chrono::milliseconds wait, uint32_t in_a_row, const std::string& why)>
    on_cooldown = {};
};

struct supervisor_spec {
  std::string name; // "root", "model mlp", ...
  restart_strategy strategy = restart_strategy::one_for_one;
  restart_config intensity;            // max_restarts, period_s and the backoff between restarts
  std::vector<child_spec> children;    // started in this order, stopped in reverse
  std::function<double()> uniform = {}; // jitter draws in [0, 1); tests pass fixed ones
};

/// Starts the supervisor, which starts its children in order. Messages it understands besides
/// exit (stop everything, in reverse order, within each child's shutdown time):
/// `(worker_hung_atom, child id)`: the child is stuck; it is abandoned (killed, no longer
/// waited for) and handled as failed.
/// `(terminate_child_atom, child id) -> bool`: as OTP's terminate_child, the child is stopped
/// (within its shutdown time) and kept down, whatever its restart type; answered once it is down.
/// `(restart_child_atom, child id) -> bool`: as OTP's restart_child, a child that is down (stopped
/// so, or not restarted by its restart type) is started again; an error while it runs.
/// A child waiting out its cool-down is not started if it was stopped on request (terminate_child)
/// meanwhile; restart_child starts it at once.
caf::actor spawn_supervisor_tree(caf::actor_system& sys, supervisor_spec spec);

} // namespace actorserve
