#include "runtime/restart_policy.hpp"

#include <algorithm>
#include <cmath>
#include <random>

namespace actorserve {

restart_tracker::restart_tracker(restart_config cfg, std::function<double()> uniform)
  : cfg_(cfg), uniform_(std::move(uniform)) {
  if (!uniform_)
    uniform_ = [rng = std::make_shared<std::mt19937_64>(std::random_device{}())] {
      return std::uniform_real_distribution<double>(0, 1)(*rng);
    };
}

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
  delay *= 1.0 + cfg_.backoff_jitter * (2.0 * uniform_() - 1.0);
  restarts_.push_back(now);
  return std::chrono::milliseconds(static_cast<int64_t>(delay));
}

crash_loop_backoff::crash_loop_backoff(std::chrono::milliseconds initial,
                                       std::chrono::milliseconds max)
  : initial_(initial), max_(std::max(initial, max)) {}

std::optional<std::chrono::milliseconds> crash_loop_backoff::on_given_up(time_point now) {
  if (!enabled())
    return std::nullopt;
  if (now - started_ >= max_)
    in_a_row_ = 0; // it served a good while: this is a new crash loop
  auto wait = initial_;
  for (uint32_t i = 0; i < in_a_row_ && wait < max_; ++i)
    wait *= 2;
  ++in_a_row_;
  return std::min(wait, max_);
}

} // namespace actorserve
