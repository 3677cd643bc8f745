#include <catch2/catch.hpp>

#include "runtime/batching.hpp"

using namespace actorserve;
using namespace std::chrono_literals;

namespace {

const time_point t0{std::chrono::seconds(1000)};

pending_request req(request_id id, time_point at, uint32_t rows = 1, std::string key = "a",
                    std::chrono::milliseconds timeout = 10s) {
  return pending_request{id, std::move(key), rows, at, at + timeout};
}

batching_options opts(uint32_t max_batch, std::chrono::microseconds delay,
                      std::vector<uint32_t> preferred = {}, std::size_t max_queue = 100) {
  batching_options o;
  o.max_batch_size = max_batch;
  o.max_queue_delay = delay;
  o.preferred_batch_sizes = std::move(preferred);
  o.max_queue_size = max_queue;
  return o;
}

} // namespace

TEST_CASE("batcher policy sends a batch as soon as it reaches max_batch_size", "[batching]") {
  batch_queue q{opts(4, 1000us)};
  for (request_id i = 1; i <= 3; ++i)
    REQUIRE(q.push(req(i, t0)) == admission::accepted);
  CHECK_FALSE(q.pop_due(t0)); // 3 of 4, delay not over
  REQUIRE(q.push(req(4, t0)) == admission::accepted);
  auto b = q.pop_due(t0);
  REQUIRE(b);
  CHECK(b->ids == std::vector<request_id>{1, 2, 3, 4});
  CHECK(b->rows == 4);
  CHECK(q.empty());
}

TEST_CASE("batcher policy flushes when the oldest request reaches max_queue_delay", "[batching]") {
  batch_queue q{opts(8, 500us)};
  q.push(req(1, t0));
  q.push(req(2, t0 + 200us));
  CHECK_FALSE(q.pop_due(t0 + 499us));
  CHECK(q.next_event(true) == t0 + 500us);
  auto b = q.pop_due(t0 + 500us);
  REQUIRE(b);
  CHECK(b->ids == std::vector<request_id>{1, 2});
}

TEST_CASE("batcher policy with zero delay sends whatever is queued at once", "[batching]") {
  batch_queue q{opts(8, 0us)};
  q.push(req(1, t0));
  auto b = q.pop_due(t0);
  REQUIRE(b);
  CHECK(b->ids == std::vector<request_id>{1});
}

TEST_CASE("batcher policy counts rows, not requests, and never splits a request", "[batching]") {
  batch_queue q{opts(8, 1000us)};
  q.push(req(1, t0, 3));
  q.push(req(2, t0, 4));
  q.push(req(3, t0, 2)); // 3 + 4 + 2 > 8: the third does not fit
  auto b = q.pop_due(t0);
  REQUIRE(b);
  CHECK(b->ids == std::vector<request_id>{1, 2});
  CHECK(b->rows == 7);
  CHECK(q.size() == 1);
  CHECK(q.push(req(4, t0, 9)) == admission::too_many_rows);
}

TEST_CASE("batcher policy sends the largest preferred batch size it can fill", "[batching]") {
  batch_queue q{opts(16, 10ms, {4, 8})};
  for (request_id i = 1; i <= 3; ++i)
    q.push(req(i, t0));
  CHECK_FALSE(q.pop_due(t0)); // 3: below every preferred size
  for (request_id i = 4; i <= 6; ++i)
    q.push(req(i, t0));
  auto b = q.pop_due(t0); // 6 queued: preferred 4 goes now
  REQUIRE(b);
  CHECK(b->rows == 4);
  CHECK(b->ids == std::vector<request_id>{1, 2, 3, 4});
  CHECK_FALSE(q.pop_due(t0)); // 2 left, below 4
  for (request_id i = 7; i <= 12; ++i)
    q.push(req(i, t0));
  b = q.pop_due(t0); // 8 queued: preferred 8
  REQUIRE(b);
  CHECK(b->rows == 8);
  CHECK(q.empty());
}

TEST_CASE("batcher policy sends a non-preferred size once the delay is over", "[batching]") {
  batch_queue q{opts(16, 1ms, {4, 8})};
  q.push(req(1, t0));
  q.push(req(2, t0));
  q.push(req(3, t0));
  auto b = q.pop_due(t0 + 1ms);
  REQUIRE(b);
  CHECK(b->rows == 3);
}

TEST_CASE("batcher policy keeps shape-incompatible requests in separate batches", "[batching]") {
  batch_queue q{opts(4, 1ms)};
  q.push(req(1, t0, 1, "3x224"));
  q.push(req(2, t0, 1, "3x112"));
  q.push(req(3, t0, 1, "3x224"));
  q.push(req(4, t0 + 1ms, 1, "3x112"));
  auto first = q.pop_due(t0 + 1ms);
  REQUIRE(first);
  CHECK(first->ids == std::vector<request_id>{1, 3});
  auto second = q.pop_due(t0 + 1ms);
  REQUIRE(second);
  CHECK(second->ids == std::vector<request_id>{2, 4});
  CHECK(q.empty());
}

TEST_CASE("batcher policy serves a full group even when an older group is still waiting",
          "[batching]") {
  batch_queue q{opts(2, 10ms)};
  q.push(req(1, t0, 1, "a"));
  q.push(req(2, t0, 1, "b"));
  q.push(req(3, t0, 1, "b"));
  auto b = q.pop_due(t0);
  REQUIRE(b);
  CHECK(b->ids == std::vector<request_id>{2, 3});
  CHECK(q.size() == 1);
}

TEST_CASE("batcher policy rejects requests beyond max_queue_size", "[batching]") {
  batch_queue q{opts(8, 1ms, {}, 2)};
  CHECK(q.push(req(1, t0)) == admission::accepted);
  CHECK(q.push(req(2, t0)) == admission::accepted);
  CHECK(q.push(req(3, t0)) == admission::queue_full);
  CHECK(q.size() == 2);
}

TEST_CASE("batcher policy expires requests whose deadline passed, at that moment", "[batching]") {
  batch_queue q{opts(8, 50ms)};
  q.push(req(1, t0, 1, "a", 5ms));
  q.push(req(2, t0, 1, "a", 20ms));
  // The next event is the first deadline, well before the batching delay runs out.
  CHECK(q.next_event(true) == t0 + 5ms);
  CHECK(q.next_event(false) == t0 + 5ms);
  CHECK(q.expire(t0 + 4ms).empty());
  CHECK(q.expire(t0 + 5ms) == std::vector<request_id>{1});
  CHECK(q.size() == 1);
  CHECK(q.next_event(true) == t0 + 20ms);
}

TEST_CASE("batcher policy without batch triggers reports only deadlines", "[batching]") {
  batch_queue q{opts(8, 1ms)};
  q.push(req(1, t0, 1, "a", 100ms));
  CHECK(q.next_event(true) == t0 + 1ms);
  CHECK(q.next_event(false) == t0 + 100ms);
  CHECK_FALSE(batch_queue{opts(8, 1ms)}.next_event(true));
}

TEST_CASE("batcher policy with max_batch_size 0 runs each request alone, in order", "[batching]") {
  batch_queue q{opts(0, 1ms)};
  q.push(req(1, t0));
  q.push(req(2, t0));
  auto b = q.pop_due(t0);
  REQUIRE(b);
  CHECK(b->ids == std::vector<request_id>{1});
  b = q.pop_due(t0);
  REQUIRE(b);
  CHECK(b->ids == std::vector<request_id>{2});
}

TEST_CASE("batcher policy removes a request on demand", "[batching]") {
  batch_queue q{opts(8, 1ms)};
  q.push(req(1, t0));
  CHECK(q.remove(1));
  CHECK_FALSE(q.remove(1));
  CHECK(q.empty());
}

TEST_CASE("for a busy worker's spare slot only full batches are due", "[batching]") {
  batch_queue q{opts(4, 0us, {2})};
  q.push(req(1, t0));
  q.push(req(2, t0));
  q.push(req(3, t0));
  CHECK_FALSE(q.pop_due(t0 + 1s, true)); // delay over and a preferred size filled: not full
  q.push(req(4, t0, 2, "a")); // does not fit beside the three: the group counts as full
  auto b = q.pop_due(t0, true);
  REQUIRE(b);
  CHECK(b->ids == std::vector<request_id>{1, 2, 3});
  CHECK_FALSE(q.pop_due(t0, true)); // 2 rows of 4 left
  CHECK(q.pop_due(t0)); // an idle worker takes it at once (zero delay)
  batch_queue single{opts(0, 0us)};
  single.push(req(9, t0));
  CHECK_FALSE(single.pop_due(t0, true)); // without batching nothing is staged ahead
}

TEST_CASE("batcher policy serves higher priorities (lower numbers) first, arrival order within",
          "[batching][priority]") {
  batch_queue q{opts(4, 1000us)};
  auto with = [](pending_request r, uint32_t priority) {
    r.priority = priority;
    return r;
  };
  REQUIRE(q.push(with(req(1, t0), 2)) == admission::accepted);
  REQUIRE(q.push(with(req(2, t0 + 1us), 2)) == admission::accepted);
  REQUIRE(q.push(with(req(3, t0 + 2us), 1)) == admission::accepted);
  REQUIRE(q.push(with(req(4, t0 + 3us), 2)) == admission::accepted);
  REQUIRE(q.push(with(req(5, t0 + 4us), 1)) == admission::accepted);
  auto b = q.pop_due(t0 + 4us); // full: the two of priority 1, then the oldest of priority 2
  REQUIRE(b);
  CHECK(b->ids == std::vector<request_id>{3, 5, 1, 2});
  // The delay runs from the group's oldest request, though it is not first in the queue.
  REQUIRE(q.push(with(req(6, t0 + 900us), 1)) == admission::accepted);
  CHECK_FALSE(q.pop_due(t0 + 999us));
  CHECK(q.next_event(true) == t0 + 1003us); // request 4's delay
  b = q.pop_due(t0 + 1003us);
  REQUIRE(b);
  CHECK(b->ids == std::vector<request_id>{6, 4});
}

TEST_CASE("the halves of a failed batch batch only within their half", "[batching]") {
  batch_queue q{opts(4, 1000us)};
  for (request_id i = 1; i <= 4; ++i) {
    auto r = req(i, t0);
    r.split_group = i <= 2 ? 7 : 8;
    REQUIRE(q.push(std::move(r)) == admission::accepted);
  }
  REQUIRE(q.push(req(5, t0)) == admission::accepted); // same shape, no group
  auto later = t0 + 2ms;                             // every delay over
  auto first = q.pop_due(later);
  REQUIRE(first);
  CHECK(first->ids == std::vector<request_id>{1, 2});
  auto second = q.pop_due(later);
  REQUIRE(second);
  CHECK(second->ids == std::vector<request_id>{3, 4});
  auto third = q.pop_due(later);
  REQUIRE(third);
  CHECK(third->ids == std::vector<request_id>{5});
}
