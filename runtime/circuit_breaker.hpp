// A per-worker circuit breaker, free of CAF and of the clock (callers pass `now`):
// closed -> open after `failure_threshold` consecutive failures; open for `reset_timeout`, which
// grows by `backoff_factor` up to `max_reset_timeout` while probes keep failing; then half-open,
// which admits one probe batch; a success closes it again and resets the timeout.
#pragma once

#include <chrono>
#include <cstdint>

#include "runtime/batching.hpp" // time_point

namespace actorserve {

struct breaker_config {
  uint32_t failure_threshold = 3;
  std::chrono::milliseconds reset_timeout{1000};
  std::chrono::milliseconds max_reset_timeout{30000};
  double backoff_factor = 2.0;
};

enum class breaker_state { closed, open, half_open };

const char* to_string(breaker_state x);

class circuit_breaker {
public:
  explicit circuit_breaker(breaker_config cfg = {}) : cfg_(cfg), timeout_(cfg.reset_timeout) {}

  breaker_state state(time_point now) const;

  /// May a batch go to this worker now? In half-open state only one probe at a time.
  bool allow(time_point now);

  /// Marks that a batch was sent (the probe, when half-open).
  void on_dispatch(time_point now);

  void on_success(time_point now);
  void on_failure(time_point now);
  /// A batch ended without a verdict on the worker: it failed in a way its requests' data may
  /// explain, and they are being retried to find out. A probe (half-open) is over, so another
  /// may go; the count of consecutive failures stays as it was.
  void on_inconclusive(time_point now);

  /// When an open breaker turns half-open.
  time_point reopens_at() const { return opened_at_ + timeout_; }
  std::chrono::milliseconds current_timeout() const { return timeout_; }
  uint32_t consecutive_failures() const { return failures_; }

private:
  breaker_config cfg_;
  bool open_ = false;
  bool probing_ = false;
  uint32_t failures_ = 0;
  time_point opened_at_{};
  std::chrono::milliseconds timeout_;
};

} // namespace actorserve
