#include "runtime/retry_policy.hpp"

namespace actorserve {

bool split_failed_batch(errc failure, std::size_t requests, uint32_t max_retries) {
  return failure == errc::inference_failed && requests > 1 && max_retries > 0;
}

retry_decision decide_retry(const retry_facts& f) {
  retry_decision d;
  const bool threw = f.failure == errc::inference_failed;
  const bool retryable = f.failure == errc::worker_failed
                         || (threw && !f.threw_alone_before && f.other_worker);
  const bool budget = f.attempts - f.splits <= f.max_retries;
  if (retryable && budget && !f.deadline_passed) {
    d.retry = true;
    d.threw_alone = f.threw_alone_before || threw;
    return d;
  }
  d.code = f.deadline_passed ? errc::deadline_exceeded : f.failure;
  d.reason = f.deadline_passed ? "its deadline passed"
             : !budget ? "its retries (retry.max_retries " + std::to_string(f.max_retries)
                           + ") are used up"
             : f.threw_alone_before ? "the backend failed on it on two workers"
                                    : "the backend failed on it alone";
  return d;
}

std::string failed_attempts_message(uint64_t request, const std::string& model,
                                    const std::vector<std::string>& failures,
                                    const std::string& reason) {
  std::string all;
  for (std::size_t k = 0; k < failures.size(); ++k)
    all += (k ? "; " : "") + std::string("[") + std::to_string(k + 1) + "] " + failures[k];
  return "request " + std::to_string(request) + " to model '" + model + "' failed after "
         + std::to_string(failures.size()) + " attempts (" + reason + "): " + all;
}

} // namespace actorserve
