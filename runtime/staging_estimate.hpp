// What a batcher knows of a worker: how long a batch takes it and how long staging takes,
// learned from its finished batches, and so when its device will have finished what it holds
// and when a batch handed to it now would be done (a request that batch could not finish before
// its deadline is not run). A worker that holds several batches at once (a GPU worker stages the
// next batch while the device computes one) gets its next batch a little before its device is
// free (the staging lead): early enough that the device does not wait, late enough that the batch
// takes in every request that arrived meanwhile. Pure and clock-free: callers pass `now`.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "runtime/batching.hpp"

namespace actorserve {

class staging_estimate {
public:
  using nanoseconds = std::chrono::nanoseconds;

  /// A batch of `rows` went to the worker.
  void on_dispatch(time_point now, uint64_t batch, uint32_t rows);

  /// A batch ended; `device` is what it cost the device (from its start, or from the previous
  /// batch's end if it queued behind it), `staging` what its staging cost the worker. Failed
  /// batches pass no timings.
  void on_done(time_point now, uint64_t batch, std::optional<nanoseconds> device = std::nullopt,
               std::optional<nanoseconds> staging = std::nullopt);

  /// When the worker should be handed its next batch: the expected end of what it holds minus
  /// the staging lead. nullopt while it holds nothing (it is idle: any due batch may go) or
  /// before a batch has taught the estimate anything.
  std::optional<time_point> stage_next_at() const;

  /// When a batch of `rows` handed to the worker now would be done: after its staging, once the
  /// device is through what it holds. nullopt before a batch has taught the estimate anything.
  std::optional<time_point> finish_if_dispatched(time_point now, uint32_t rows) const;

  /// Expected device time of a batch of `rows` (0 before the first finished batch).
  nanoseconds batch_time(uint32_t rows) const;
  /// The lead: expected staging time plus a margin for messages and scheduling.
  nanoseconds lead() const;
  bool learned() const { return samples_ > 0; }

private:
  void replan(time_point now);

  std::vector<std::pair<uint64_t, uint32_t>> held_; // batch, rows; in dispatch order
  double ns_per_row_ = 0;                         // moving averages
  double staging_ns_ = 0;
  uint64_t samples_ = 0;
  std::optional<time_point> busy_until_;          // expected end of the held batches
};

} // namespace actorserve
