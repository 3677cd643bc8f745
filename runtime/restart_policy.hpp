// When to restart a crashed child, free of CAF and of the clock: exponential backoff between
// restarts and a restart-intensity limit (at most N restarts within a period, then give up), and
// when to try a given-up child again (crash-loop back-off).
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <optional>

#include "runtime/batching.hpp" // time_point
#include "runtime/config.hpp"

namespace actorserve {

class restart_tracker {
public:
  /// `uniform` returns numbers in [0, 1) for the jitter; the default is a seeded PRNG, tests pass
  /// a fixed sequence.
  explicit restart_tracker(restart_config cfg, std::function<double()> uniform = {});

  /// Records a failure at `now`. Returns the delay before the restart (initial * factor^(k-1)
  /// for the k-th restart within the period, capped at the maximum, then scaled by a random
  /// factor in [1 - jitter, 1 + jitter] so that workers failing together do not restart in
  /// lock-step), or nullopt when the child has used up its restarts and must be given up.
  std::optional<std::chrono::milliseconds> on_failure(time_point now);

  /// Restarts counted within the period ending at `now`.
  std::size_t recent_restarts(time_point now);

private:
  void forget_before(time_point now);

  restart_config cfg_;
  std::function<double()> uniform_;
  std::deque<time_point> restarts_;
};

/// When to try a child again after it was given up (its restarts used up), as Kubernetes backs off
/// a pod in CrashLoopBackOff: `initial`, doubling with each give-up in a row up to `max`. A child
/// that ran for `max` or longer since its last start before it was given up again starts over at
/// `initial`. With `initial` 0 it is off: a given-up child stays down.
class crash_loop_backoff {
public:
  crash_loop_backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max);

  bool enabled() const { return initial_.count() > 0; }

  /// The child was started (again) at `now`.
  void on_start(time_point now) { started_ = now; }

  /// The child was given up at `now`: how long to wait before starting it again, or nullopt
  /// when back-off is off.
  std::optional<std::chrono::milliseconds> on_given_up(time_point now);

  /// Give-ups in a row (reset by a run of at least `max`).
  uint32_t in_a_row() const { return in_a_row_; }

private:
  std::chrono::milliseconds initial_, max_;
  time_point started_{};
  uint32_t in_a_row_ = 0;
};

} // namespace actorserve
