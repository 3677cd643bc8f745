#include "runtime/circuit_breaker.hpp"

#include <algorithm>

namespace actorserve {

const char* to_string(breaker_state x) {
  switch (x) {
    case breaker_state::closed: return "closed";
    case breaker_state::open: return "open";
    case breaker_state::half_open: return "half_open";
  }
  return "unknown";
}

breaker_state circuit_breaker::state(time_point now) const {
  if (!open_)
    return breaker_state::closed;
  return now >= reopens_at() ? breaker_state::half_open : breaker_state::open;
}

bool circuit_breaker::allow(time_point now) {
  switch (state(now)) {
    case breaker_state::closed: return true;
    case breaker_state::open: return false;
    case breaker_state::half_open: return !probing_;
  }
  return false;
}

void circuit_breaker::on_dispatch(time_point now) {
  if (state(now) == breaker_state::half_open)
    probing_ = true;
}

void circuit_breaker::on_success(time_point) {
  open_ = false;
  probing_ = false;
  failures_ = 0;
  timeout_ = cfg_.reset_timeout;
}

void circuit_breaker::on_inconclusive(time_point) {
  probing_ = false;
}

void circuit_breaker::on_failure(time_point now) {
  if (open_) {
    // A failed probe (or a late failure while open): stay open, longer.
    if (probing_ || now >= reopens_at()) {
      auto grown = std::chrono::milliseconds(
        static_cast<int64_t>(static_cast<double>(timeout_.count()) * cfg_.backoff_factor));
      timeout_ = std::min(grown, cfg_.max_reset_timeout);
    }
    probing_ = false;
    opened_at_ = now;
    return;
  }
  if (++failures_ >= cfg_.failure_threshold) {
    open_ = true;
    opened_at_ = now;
    timeout_ = cfg_.reset_timeout;
  }
}

} // namespace actorserve
