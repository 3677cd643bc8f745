// What becomes of the requests of a batch the queue planned for one worker, free of CAF and of
// the clock: each runs now, goes back to the head of the queue, or is answered at once. Requests
// whose client left are dropped; those that the batch would not be done for before their
// deadline (by the worker's staging estimate) are answered 504 now, and then the rest all go
// back to form a fuller batch with the requests behind them; those this worker already failed go
// back for another worker. actors/batcher carries the verdict out.
#pragma once

#include <optional>
#include <vector>

#include "runtime/batching.hpp"

namespace actorserve {

/// What the batcher knows of one planned request.
struct planned_request {
  request_id id = 0;
  bool cancelled = false;        // its client closed its connection
  time_point deadline;
  bool failed_on_worker = false; // this worker failed it before
};

struct dispatch_verdict {
  std::vector<request_id> take;      // run on this worker now, in order
  std::vector<request_id> back;      // back to the head of the queue, in this order
  std::vector<request_id> cancelled; // dropped: nobody waits for their answer
  std::vector<request_id> doomed;    // answered deadline_exceeded without running
  /// Due requests went back only because this worker had failed them (no tick is scheduled for
  /// them: another worker's becoming free wakes the batcher).
  bool held_back() const { return doomed.empty() && !back.empty(); }
};

/// Sorts a planned batch; `done`: when the batch would end on this worker, if it can tell.
dispatch_verdict sort_planned(const std::vector<planned_request>& batch,
                              std::optional<time_point> done);

} // namespace actorserve
