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
