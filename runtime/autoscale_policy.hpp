// How many worker instances a model wants, from the figures its batcher reads every
// autoscaling.interval_ms. Free of CAF and of the clock (callers pass the time), so that its
// tests run on a fake clock. Ray Serve's semantics as the floor:
// - ongoing requests (queued + running) averaged over the look-back window, divided by the
//   target per instance, gives the instances wanted; the smoothing factors make only that share
//   of the change at once;
// - a wish to scale up must hold for upscale_delay, one to scale down for downscale_delay,
//   before it is acted on (a wish that lapses starts the wait again);
// and two signals Ray Serve lacks, which act at once:
// - the queue-wait quantile above its target: up by the ratio (at least one instance);
// - queued requests predicted to miss their deadlines with the instances there are: up by one
//   (before the 504s start, not after);
// plus: requests waiting with no instance at all start one at once (scale from zero), bounds
// changed at run time are applied at once, and a scale-down never leaves the instances that stay
// busier than max_busy_after_downscale (their busy share averaged over the look-back window): the
// ongoing figure alone, by Little's law, would let 4 instances that are 75% busy at 20 ms a
// request and 2 ongoing per instance fall to 2, which cannot keep up, and come straight back.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <utility>

#include "runtime/config.hpp"

namespace actorserve {

/// What the batcher reads for a decision.
struct load_figures {
  int64_t now_ns = 0;
  double ongoing = 0;           // requests queued + in flight now
  double queue_wait_ms = 0;     // the configured quantile of queue waits lately (see batcher)
  uint32_t predicted_misses = 0; // queued requests that will not make their deadlines
  uint32_t current = 0;         // instances ready or starting (not those leaving)
  double busy = 0;              // instances busy since the last decision, on average (batch
                                // time over elapsed time; a worker holding several batches at
                                // once counts each as its share)
};

/// Why the wanted count changed (and the direction, from the counts).
enum class scale_reason : uint8_t {
  none,             // no change
  ongoing_requests, // the average ongoing requests per instance, against its target
  queue_wait,       // the queue-wait quantile above its target
  predicted_misses, // queued requests will miss their deadlines
  cold_start,       // requests wait and no instance is there (scale from zero)
  bounds,           // outside min..max (set at run time)
  count
};

const char* to_string(scale_reason r);

struct scale_decision {
  uint32_t desired = 0; // == figures.current: hold
  scale_reason reason = scale_reason::none;
};

class autoscale_policy {
public:
  explicit autoscale_policy(const autoscaling_settings& s);

  /// The instances wanted now. Call it every interval with fresh figures.
  scale_decision decide(const load_figures& f);

  /// New bounds (the management endpoint); min <= max is the caller's to check.
  void set_bounds(uint32_t min_instances, uint32_t max_instances);
  uint32_t min_instances() const { return min_; }
  uint32_t max_instances() const { return max_; }

  /// The average ongoing requests of the last decision (for the metrics).
  double average_ongoing() const { return average_; }
  double average_busy() const { return average_busy_; }

private:
  uint32_t clamp(uint32_t n) const;
  /// The count the ongoing-requests target wants, smoothed.
  uint32_t by_ongoing(uint32_t current) const;
  /// The wish (if any) that acts at once, regardless of the delays.
  scale_decision urgent(const load_figures& f) const;

  autoscaling_settings s_;
  uint32_t min_, max_;
  struct sample {
    int64_t at;
    double ongoing, busy;
  };
  std::deque<sample> window_; // within look_back
  double average_ = 0, average_busy_ = 0;
  int64_t up_since_ = -1, down_since_ = -1; // when the wish to go up (down) began; -1: none
};

} // namespace actorserve
