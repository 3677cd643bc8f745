// The dynamic batching policy of one model, as Triton's dynamic batcher defines it, free of CAF
// and of the clock: callers pass `now`, so unit tests drive it with a fake clock. It decides
// which queued requests form the next batch and when the queue next needs attention.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

namespace actorserve {

using steady_clock = std::chrono::steady_clock;
using time_point = steady_clock::time_point;
using request_id = uint64_t;

struct batching_options {
  uint32_t max_batch_size = 1; // 0: no batching, each request is a batch of its own
  std::chrono::microseconds max_queue_delay{1000};
  std::vector<uint32_t> preferred_batch_sizes; // ascending
  std::size_t max_queue_size = 1024;
};

struct pending_request {
  request_id id = 0;
  std::string shape_key; // requests share a batch only when their keys are equal
  uint32_t rows = 1;     // the request's own batch dimension
  time_point enqueued;
  time_point deadline;
  uint32_t priority = 0; // lower numbers first (Triton's priority levels); equal: arrival order
  /// The half of a failed batch it was requeued in (0: none): it batches only with its half.
  uint64_t split_group = 0;
};

/// Whether two requests may share a batch: the same shape key, and the same split group.
bool same_group(const pending_request& a, const pending_request& b);

enum class admission { accepted, queue_full, too_many_rows };

struct batch_plan {
  std::vector<request_id> ids; // in arrival order
  uint32_t rows = 0;
};

class batch_queue {
public:
  explicit batch_queue(batching_options opts);

  /// Queues `req` unless the queue is at its bound or `req` alone exceeds max_batch_size: behind
  /// every request of its priority or a higher one (a lower number), ahead of those of lower
  /// priority.
  admission push(pending_request req);

  /// Removes and returns the requests whose deadline is at or before `now`.
  std::vector<request_id> expire(time_point now);

  /// Removes and returns the next batch that is due at `now`, if any. A group of
  /// shape-compatible requests is due when it fills max_batch_size, when it reaches one of the
  /// preferred sizes (the largest one it can fill is sent), or when its oldest request has
  /// waited max_queue_delay (then as much as fits is sent). Groups are served in queue order
  /// (priority, then arrival) of their first request, and fill batches in that order.
  /// With `full_only`, only a group that fills max_batch_size is due (for a worker that is busy
  /// and would only stage the batch: a partial batch waits to grow until a worker is idle).
  std::optional<batch_plan> pop_due(time_point now, bool full_only = false);

  /// Puts an admitted request back at the head of the queue (a retry, or a request its worker may
  /// not take); not subject to max_queue_size, since it was admitted before.
  void requeue(pending_request req) { queue_.push_front(std::move(req)); }

  /// Removes a request that left the queue by other means (e.g. cancelled); false if absent.
  bool remove(request_id id);

  /// The earliest time at which something will be due: the earliest deadline and, when
  /// `with_batch_triggers`, the earliest moment a group's delay runs out. nullopt when empty.
  std::optional<time_point> next_event(bool with_batch_triggers) const;

  std::size_t size() const { return queue_.size(); }
  bool empty() const { return queue_.empty(); }
  const batching_options& options() const { return opts_; }

private:
  batching_options opts_;
  std::deque<pending_request> queue_; // priority, then arrival order (requeued ones first)
};

} // namespace actorserve
