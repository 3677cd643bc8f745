// When to restart a crashed child, free of CAF and of the clock: exponential backoff between
// restarts and a restart-intensity limit (at most N restarts within a period, then give up).
#pragma once

#include <chrono>
#include <deque>
#include <optional>

#include "runtime/batching.hpp" // time_point
#include "runtime/config.hpp"

namespace actorserve {

class restart_tracker {
public:
  explicit restart_tracker(restart_config cfg) : cfg_(cfg) {}

  /// Records a failure at `now`. Returns the delay before the restart, or nullopt when the
  /// child has used up its restarts within the period and must be given up.
  std::optional<std::chrono::milliseconds> on_failure(time_point now);

  /// Restarts counted within the period ending at `now`.
  std::size_t recent_restarts(time_point now);

private:
  void forget_before(time_point now);

  restart_config cfg_;
  std::deque<time_point> restarts_;
};

} // namespace actorserve
