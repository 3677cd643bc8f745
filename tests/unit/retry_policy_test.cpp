// What happens to the requests of a failed batch (runtime/retry_policy): split, retry or fail,
// with the reason.
#include <catch2/catch.hpp>

#include "runtime/retry_policy.hpp"

using namespace actorserve;

namespace {

retry_facts facts(errc failure, uint32_t attempts = 1) {
  retry_facts f;
  f.failure = failure;
  f.attempts = attempts;
  f.max_retries = 2;
  f.other_worker = true;
  return f;
}

} // namespace

TEST_CASE("a batch the backend threw on is split only when it has several requests and retries "
          "are on", "[retry]") {
  CHECK(split_failed_batch(errc::inference_failed, 2, 1));
  CHECK_FALSE(split_failed_batch(errc::inference_failed, 1, 1)); // alone: its own data
  CHECK_FALSE(split_failed_batch(errc::inference_failed, 8, 0)); // no inputs kept to run again
  CHECK_FALSE(split_failed_batch(errc::worker_failed, 8, 3));    // the worker's fault
}

TEST_CASE("a worker's failure is retried while retries and time are left", "[retry]") {
  auto d = decide_retry(facts(errc::worker_failed));
  CHECK(d.retry);
  CHECK_FALSE(d.threw_alone);
  CHECK(decide_retry(facts(errc::worker_failed, 2)).retry); // 2 retries after the first attempt
  auto spent = decide_retry(facts(errc::worker_failed, 3));
  CHECK_FALSE(spent.retry);
  CHECK(spent.code == errc::worker_failed);
  CHECK(spent.reason == "its retries (retry.max_retries 2) are used up");
  auto split = facts(errc::worker_failed, 3);
  split.splits = 1; // a shared failed batch is not a retry
  CHECK(decide_retry(split).retry);
  auto late = facts(errc::worker_failed);
  late.deadline_passed = true;
  auto d2 = decide_retry(late);
  CHECK_FALSE(d2.retry);
  CHECK(d2.code == errc::deadline_exceeded);
  CHECK(d2.reason == "its deadline passed");
}

TEST_CASE("a request the backend threw on alone is retried once, on another worker", "[retry]") {
  auto first = decide_retry(facts(errc::inference_failed));
  CHECK(first.retry);
  CHECK(first.threw_alone);
  auto nowhere = facts(errc::inference_failed);
  nowhere.other_worker = false; // the same worker would throw again
  auto d = decide_retry(nowhere);
  CHECK_FALSE(d.retry);
  CHECK(d.code == errc::inference_failed);
  CHECK(d.reason == "the backend failed on it alone");
  auto again = facts(errc::inference_failed, 2);
  again.threw_alone_before = true;
  auto d2 = decide_retry(again);
  CHECK_FALSE(d2.retry);
  CHECK(d2.reason == "the backend failed on it on two workers");
}

TEST_CASE("other failures are not retried", "[retry]") {
  CHECK_FALSE(decide_retry(facts(errc::invalid_input)).retry);
  CHECK_FALSE(decide_retry(facts(errc::not_ready)).retry);
}

TEST_CASE("a request failed after several attempts lists each", "[retry]") {
  CHECK(failed_attempts_message(7, "m", {"worker a died", "worker b hung"}, "its deadline passed")
        == "request 7 to model 'm' failed after 2 attempts (its deadline passed): [1] worker a "
           "died; [2] worker b hung");
}
