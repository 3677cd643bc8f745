#include "runtime/restart_policy.hpp"

#include <algorithm>
#include <cmath>

namespace actorserve {

void restart_tracker::forget_before(time_point now) {
  auto window = std::chrono::seconds(cfg_.period_s);
  while (!restarts_.empty() && now - restarts_.front() >= window)
    restarts_.pop_front();
}

std::size_t restart_tracker::recent_restarts(time_point now) {
  forget_before(now);
  return restarts_.size();
}

std::optional<std::chrono::milliseconds> restart_tracker::on_failure(time_point now) {
  forget_before(now);
  if (restarts_.size() >= cfg_.max_restarts)
    return std::nullopt;
  // The k-th restart within the period waits initial * factor^(k-1), capped at the maximum.
  double delay = cfg_.backoff_initial_ms
                 * std::pow(cfg_.backoff_factor, static_cast<double>(restarts_.size()));
  delay = std::min(delay, static_cast<double>(cfg_.backoff_max_ms));
  restarts_.push_back(now);
  return std::chrono::milliseconds(static_cast<int64_t>(delay));
}

} // namespace actorserve
