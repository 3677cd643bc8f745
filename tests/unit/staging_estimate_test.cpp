#include <catch2/catch.hpp>

#include "runtime/staging_estimate.hpp"

using namespace actorserve;
using namespace std::chrono_literals;

TEST_CASE("the pipeline estimate stages the next batch one lead before the device is free",
          "[pipeline]") {
  staging_estimate p;
  time_point t0{};
  CHECK_FALSE(p.stage_next_at()); // idle
  p.on_dispatch(t0, 1, 100);
  CHECK_FALSE(p.stage_next_at()); // nothing learned yet: only full batches go to a busy worker
  p.on_done(t0 + 12ms, 1, 10ms, 1ms); // 100 us a row, 1 ms staging
  CHECK(p.learned());
  CHECK(p.batch_time(100) == 10ms);
  CHECK(p.lead() == 1300us); // staging + margin
  CHECK_FALSE(p.stage_next_at()); // holds nothing: idle
  // Dispatched to an idle device at t1: staged by t1 + lead, done 10 ms later.
  auto t1 = t0 + 20ms;
  p.on_dispatch(t1, 2, 100);
  REQUIRE(p.stage_next_at());
  CHECK(*p.stage_next_at() == t1 + 10ms);
  // A second batch queues behind the first: the next one is due a batch later.
  p.on_dispatch(t1 + 10ms, 3, 50);
  CHECK(*p.stage_next_at() == t1 + 15ms);
  // The first ends early: the second runs from then.
  p.on_done(t1 + 9ms, 2, 9ms, 1ms);
  CHECK(p.batch_time(100) == std::chrono::nanoseconds(9'800'000)); // 100 + 0.2 * (90 - 100) us/row
  CHECK(*p.stage_next_at() == t1 + 9ms + p.batch_time(50) - p.lead());
  // A failed batch teaches nothing but is no longer held.
  p.on_done(t1 + 10ms, 3);
  CHECK_FALSE(p.stage_next_at());
  CHECK(p.batch_time(100) == std::chrono::nanoseconds(9'800'000));
  p.on_done(t1 + 10ms, 42, 1ms); // unknown batch: ignored
  CHECK(p.batch_time(100) == std::chrono::nanoseconds(9'800'000));
}

TEST_CASE("a worker that reports no device time never gets partial batches early", "[pipeline]") {
  staging_estimate p;
  time_point t0{};
  p.on_dispatch(t0, 1, 8);
  p.on_done(t0 + 1ms, 1, 0ns, 0ns);
  CHECK_FALSE(p.learned());
  p.on_dispatch(t0 + 2ms, 2, 8);
  CHECK_FALSE(p.stage_next_at()); // only full batches, as with stage_ahead off
}

TEST_CASE("when a batch handed to the worker now would be done", "[pipeline]") {
  staging_estimate p;
  time_point t0{};
  CHECK_FALSE(p.finish_if_dispatched(t0, 10)); // nothing learned: no estimate
  p.on_dispatch(t0, 1, 100);
  p.on_done(t0 + 12ms, 1, 10ms, 1ms); // 100 us a row, lead 1.3 ms
  auto t1 = t0 + 20ms;
  // Idle: staged after the lead, then its own rows.
  REQUIRE(p.finish_if_dispatched(t1, 50));
  CHECK(*p.finish_if_dispatched(t1, 50) == t1 + 1300us + 5ms);
  // Busy until t1 + 11.3 ms: after that.
  p.on_dispatch(t1, 2, 100);
  CHECK(*p.finish_if_dispatched(t1, 50) == t1 + 11300us + 5ms);
  // Handed over late (t1 + 11 ms), it is staged only from then: the device waits for it.
  CHECK(*p.finish_if_dispatched(t1 + 11ms, 50) == t1 + 12300us + 5ms);
}
