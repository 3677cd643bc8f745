#include "runtime/autoscale_policy.hpp"

#include <algorithm>
#include <cmath>

namespace actorserve {

const char* to_string(scale_reason r) {
  switch (r) {
    case scale_reason::none: return "none";
    case scale_reason::ongoing_requests: return "ongoing_requests";
    case scale_reason::queue_wait: return "queue_wait";
    case scale_reason::predicted_misses: return "predicted_misses";
    case scale_reason::cold_start: return "cold_start";
    case scale_reason::bounds: return "bounds";
    case scale_reason::count: break;
  }
  return "?";
}

autoscale_policy::autoscale_policy(const autoscaling_settings& s)
  : s_(s), min_(s.min_instances), max_(s.max_instances) {}

void autoscale_policy::set_bounds(uint32_t min_instances, uint32_t max_instances) {
  min_ = min_instances;
  max_ = max_instances;
}

uint32_t autoscale_policy::clamp(uint32_t n) const {
  return std::min(std::max(n, min_), max_);
}

uint32_t autoscale_policy::by_ongoing(uint32_t current) const {
  if (s_.target_ongoing_requests <= 0)
    return current;
  double wanted = average_ / s_.target_ongoing_requests; // (fractional instances)
  if (current == 0)
    return static_cast<uint32_t>(std::ceil(wanted));
  double factor = wanted > current ? s_.upscaling_factor : s_.downscaling_factor;
  double smoothed = current + (wanted - current) * factor;
  // (Up: ceil, so that any excess adds an instance; down: ceil too, so that an instance goes
  // only once the others can hold its load.)
  return static_cast<uint32_t>(std::max(0.0, std::ceil(smoothed - 1e-9)));
}

scale_decision autoscale_policy::urgent(const load_figures& f) const {
  scale_decision d{f.current, scale_reason::none};
  if (f.current < min_ || f.current > max_)
    return {clamp(f.current), scale_reason::bounds};
  if (f.current == 0 && f.ongoing > 0)
    return {clamp(1), scale_reason::cold_start};
  if (s_.predicted_misses && f.predicted_misses > 0)
    d = {f.current + 1, scale_reason::predicted_misses};
  if (s_.target_queue_wait_ms > 0 && f.queue_wait_ms > s_.target_queue_wait_ms) {
    double ratio = std::min(f.queue_wait_ms / s_.target_queue_wait_ms, 2.0);
    auto n = std::max(f.current + 1, static_cast<uint32_t>(std::ceil(f.current * ratio)));
    if (n > d.desired)
      d = {n, scale_reason::queue_wait};
  }
  d.desired = clamp(d.desired);
  if (d.desired <= f.current)
    d = {f.current, scale_reason::none};
  return d;
}

scale_decision autoscale_policy::decide(const load_figures& f) {
  window_.push_back({f.now_ns, f.ongoing, f.busy});
  auto horizon = f.now_ns - int64_t{s_.look_back_ms} * 1'000'000;
  while (window_.size() > 1 && window_.front().at < horizon)
    window_.pop_front();
  double sum = 0, busy = 0;
  for (auto& w : window_) {
    sum += w.ongoing;
    busy += w.busy;
  }
  average_ = sum / static_cast<double>(window_.size());
  average_busy_ = busy / static_cast<double>(window_.size());

  if (auto u = urgent(f); u.reason != scale_reason::none) {
    up_since_ = down_since_ = -1;
    return u;
  }
  auto wanted = clamp(by_ongoing(f.current));
  if (wanted < f.current && s_.max_busy_after_downscale > 0) // (those that stay must cope)
    wanted = std::max(wanted, std::min(f.current, static_cast<uint32_t>(std::ceil(
                                                    average_busy_ / s_.max_busy_after_downscale
                                                    - 1e-9))));
  if (wanted > f.current) {
    down_since_ = -1;
    if (up_since_ < 0)
      up_since_ = f.now_ns;
    if (f.now_ns - up_since_ >= int64_t{s_.upscale_delay_ms} * 1'000'000) {
      up_since_ = -1;
      return {wanted, scale_reason::ongoing_requests};
    }
  } else if (wanted < f.current) {
    up_since_ = -1;
    if (down_since_ < 0)
      down_since_ = f.now_ns;
    if (f.now_ns - down_since_ >= int64_t{s_.downscale_delay_ms} * 1'000'000) {
      down_since_ = -1;
      return {wanted, scale_reason::ongoing_requests};
    }
  } else {
    up_since_ = down_since_ = -1;
  }
  return {f.current, scale_reason::none};
}

} // namespace actorserve
