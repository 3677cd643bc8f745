#include <catch2/catch.hpp>

#include "runtime/restart_policy.hpp"
#include "test_support.hpp"

using namespace actorserve;
using namespace std::chrono_literals;

TEST_CASE("restart delays grow exponentially up to the maximum", "[restart]") {
  restart_tracker r{test::restart_settings(10, 60, 100, 1000)};
  time_point t0{};
  CHECK(r.on_failure(t0) == 100ms);
  CHECK(r.on_failure(t0 + 1s) == 200ms);
  CHECK(r.on_failure(t0 + 2s) == 400ms);
  CHECK(r.on_failure(t0 + 3s) == 800ms);
  CHECK(r.on_failure(t0 + 4s) == 1000ms);
  CHECK(r.on_failure(t0 + 5s) == 1000ms);
}

TEST_CASE("more than max_restarts within the period gives the child up", "[restart]") {
  restart_tracker r{test::restart_settings(3, 10, 10)};
  time_point t0{};
  CHECK(r.on_failure(t0));
  CHECK(r.on_failure(t0 + 1s));
  CHECK(r.on_failure(t0 + 2s));
  CHECK_FALSE(r.on_failure(t0 + 3s));
  CHECK(r.recent_restarts(t0 + 3s) == 3);
}

TEST_CASE("restarts older than the period are forgotten, and backoff starts over", "[restart]") {
  restart_tracker r{test::restart_settings(2, 10, 50)};
  time_point t0{};
  CHECK(r.on_failure(t0) == 50ms);
  CHECK(r.on_failure(t0 + 5s) == 100ms);
  CHECK(r.recent_restarts(t0 + 12s) == 1);
  CHECK(r.on_failure(t0 + 16s) == 50ms); // both old restarts are outside the window
}

TEST_CASE("max_restarts 0 never restarts", "[restart]") {
  restart_config cfg;
  cfg.max_restarts = 0;
  restart_tracker r{cfg};
  CHECK_FALSE(r.on_failure(time_point{}));
}

TEST_CASE("restart delays are jittered within the configured fraction", "[restart]") {
  restart_config cfg;
  cfg.max_restarts = 10;
  cfg.backoff_initial_ms = 1000;
  cfg.backoff_jitter = 0.2;
  std::vector<double> draws{0.0, 0.5, 0.999999};
  std::size_t next = 0;
  restart_tracker r{cfg, [&] { return draws[next++]; }};
  time_point t0{};
  CHECK(r.on_failure(t0) == 800ms);              // 1000 * (1 - 0.2)
  CHECK(r.on_failure(t0 + 1s) == 2000ms);        // 2000 * 1
  CHECK(r.on_failure(t0 + 2s)->count() == 4799); // 4000 * (1 + 0.2 * 0.999998), truncated
}

TEST_CASE("crash-loop back-off doubles from its initial wait up to its maximum", "[restart]") {
  crash_loop_backoff b{10s, 60s};
  time_point t{};
  b.on_start(t);
  std::vector<std::chrono::milliseconds> waits;
  for (int i = 0; i < 5; ++i) {
    t += 1s; // each run ends after a second: a crash loop
    auto w = b.on_given_up(t);
    REQUIRE(w);
    waits.push_back(*w);
    t += *w;
    b.on_start(t);
  }
  CHECK(waits == std::vector<std::chrono::milliseconds>{10s, 20s, 40s, 60s, 60s});
  CHECK(b.in_a_row() == 5);
}

TEST_CASE("crash-loop back-off starts over after a run as long as its maximum", "[restart]") {
  crash_loop_backoff b{10s, 60s};
  time_point t{};
  b.on_start(t);
  CHECK(b.on_given_up(t + 1s) == 10s);
  b.on_start(t + 11s);
  CHECK(b.on_given_up(t + 12s) == 20s);
  b.on_start(t + 32s);
  CHECK(b.on_given_up(t + 32s + 59s) == 40s); // a minute less a second: still the same loop
  b.on_start(t + 131s);
  CHECK(b.on_given_up(t + 131s + 60s) == 10s); // served a full minute: a new loop
  CHECK(b.in_a_row() == 1);
}

TEST_CASE("crash-loop back-off with initial wait 0 keeps a given-up child down", "[restart]") {
  crash_loop_backoff b{0ms, 300s};
  CHECK_FALSE(b.enabled());
  CHECK_FALSE(b.on_given_up(time_point{} + 1h));
}
