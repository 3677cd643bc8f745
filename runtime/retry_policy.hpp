// What the batcher does with the requests of a failed batch, free of CAF and of the clock: split
// the batch in halves (the backend threw on several requests: perhaps one request's data), retry
// a request on another worker (the failure was the worker's), or fail it, with the reason.
// actors/batcher acts on these decisions: requeues, logs, counts and answers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/error.hpp"

namespace actorserve {

/// Whether a failed batch's requests are split in two halves (retried apart, each half batching
/// only with itself) rather than each retried or failed: the backend threw (inference_failed) on
/// a batch of several requests, and retries are on (without them the batcher keeps no inputs).
/// The failure is then no verdict on the worker (its breaker counts it inconclusive).
bool split_failed_batch(errc failure, std::size_t requests, uint32_t max_retries);

/// What is known of one request when its batch failed.
struct retry_facts {
  errc failure = errc::worker_failed;
  uint32_t attempts = 0;          // dispatches so far (this one included)
  uint32_t splits = 0;            // of those, failed batches it shared (they are not retries)
  uint32_t max_retries = 0;       // the model's retry.max_retries
  bool deadline_passed = false;
  bool threw_alone_before = false; // the backend already threw on it alone, on another worker
  bool other_worker = false;       // a worker that has not failed it, other than this one, serves
};

struct retry_decision {
  bool retry = false;
  /// When not retried: the code to answer with (deadline_exceeded once its deadline passed),
  /// and why it is not retried again.
  errc code = errc::worker_failed;
  std::string reason;
  /// When retried: the backend threw on it alone (the next throw is the last).
  bool threw_alone = false;
};

/// Retried when the failure was the worker's (it died or hung), or when the backend threw on it
/// alone for the first time and another worker can run it (the same one would throw again), and
/// it has retries and time left; otherwise failed.
retry_decision decide_retry(const retry_facts& f);

/// The error message of a request failed after several attempts: each attempt's failure, and
/// why no more were made.
std::string failed_attempts_message(uint64_t request, const std::string& model,
                                    const std::vector<std::string>& failures,
                                    const std::string& reason);

} // namespace actorserve
