// When to restart a crashed child, free of CAF and of the clock: exponential backoff between
// restarts and a restart-intensity limit (at most N restarts within a period, then give up).
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

} // namespace actorserve
