// The autoscaling decision (runtime/autoscale_policy.hpp) on a fake clock: milliseconds given.
#include <catch2/catch.hpp>

#include "runtime/autoscale_policy.hpp"

using namespace actorserve;

namespace {

autoscaling_settings settings(uint32_t min, uint32_t max) {
  autoscaling_settings s;
  s.enabled = true;
  s.min_instances = min;
  s.max_instances = max;
  s.target_ongoing_requests = 2;
  s.upscale_delay_ms = 1000;
  s.downscale_delay_ms = 5000;
  s.look_back_ms = 2000;
  return s;
}

load_figures at(int64_t ms, double ongoing, uint32_t current) {
  load_figures f;
  f.now_ns = ms * 1'000'000;
  f.ongoing = ongoing;
  f.current = current;
  return f;
}

} // namespace

TEST_CASE("ongoing requests above the target scale up once the wish held for upscale_delay",
          "[autoscale]") {
  autoscale_policy p{settings(1, 8)};
  // 8 ongoing at 2 per instance: 4 wanted, but only after 1 s of wanting it.
  CHECK(p.decide(at(0, 8, 1)).reason == scale_reason::none);
  CHECK(p.decide(at(500, 8, 1)).desired == 1);
  auto d = p.decide(at(1000, 8, 1));
  CHECK(d.desired == 4);
  CHECK(d.reason == scale_reason::ongoing_requests);
}

TEST_CASE("a wish that lapses starts its delay again", "[autoscale]") {
  autoscale_policy p{settings(1, 8)};
  p.decide(at(0, 8, 1));
  p.decide(at(900, 2, 1)); // average 5: still wants up, 0.9 s into its delay
  CHECK(p.decide(at(2950, 1, 1)).desired == 1); // the others left the window: 1 ongoing: lapses
  CHECK(p.decide(at(3000, 8, 1)).desired == 1); // wanting again: the delay starts now
  CHECK(p.decide(at(3999, 8, 1)).desired == 1);
  CHECK(p.decide(at(4000, 8, 1)).desired > 1);
}

TEST_CASE("scaling down waits downscale_delay and keeps min_instances", "[autoscale]") {
  autoscale_policy p{settings(2, 8)};
  CHECK(p.decide(at(0, 0, 6)).desired == 6);
  CHECK(p.decide(at(4999, 0, 6)).desired == 6);
  auto d = p.decide(at(5000, 0, 6));
  CHECK(d.desired == 2); // (0 wanted, min 2)
  CHECK(d.reason == scale_reason::ongoing_requests);
}

TEST_CASE("the ongoing figure is averaged over the look-back window", "[autoscale]") {
  autoscale_policy p{settings(1, 8)};
  p.decide(at(0, 0, 2));
  p.decide(at(1000, 0, 2));
  p.decide(at(2000, 12, 2)); // one burst among idle samples: average 4, 2 wanted: hold
  CHECK(p.average_ongoing() == Approx(4.0));
  CHECK(p.decide(at(3000, 12, 2)).desired == 2); // [1000..3000]: 8 average: up wanted from now
  CHECK(p.decide(at(4000, 12, 2)).desired == 6); // [2000..4000]: 12 average, wanted for 1 s
}

TEST_CASE("the smoothing factors make only part of the change at once", "[autoscale]") {
  auto s = settings(1, 16);
  s.upscaling_factor = 0.5;
  s.downscaling_factor = 0.25;
  autoscale_policy up{s};
  up.decide(at(0, 20, 2));
  CHECK(up.decide(at(1000, 20, 2)).desired == 6); // 10 wanted: 2 + (10 - 2) / 2
  autoscale_policy down{s};
  down.decide(at(0, 0, 9));
  CHECK(down.decide(at(5000, 0, 9)).desired == 7); // 0 wanted: 9 - 9 / 4, rounded up
}

TEST_CASE("a queue-wait quantile over its target scales up at once, by its ratio",
          "[autoscale]") {
  auto s = settings(1, 8);
  s.target_queue_wait_ms = 10;
  autoscale_policy p{s};
  auto f = at(0, 2, 2); // (ongoing alone would hold)
  f.queue_wait_ms = 15;
  auto d = p.decide(f);
  CHECK(d.desired == 3);
  CHECK(d.reason == scale_reason::queue_wait);
  f.queue_wait_ms = 100; // 10x the target: at most doubled per decision
  CHECK(p.decide(f).desired == 4);
  f.queue_wait_ms = 5;
  CHECK(p.decide(f).desired == 2);
}

TEST_CASE("predicted deadline misses add an instance at once, and not past max_instances",
          "[autoscale]") {
  autoscale_policy p{settings(1, 3)};
  auto f = at(0, 2, 2);
  f.predicted_misses = 4;
  auto d = p.decide(f);
  CHECK(d.desired == 3);
  CHECK(d.reason == scale_reason::predicted_misses);
  f.current = 3;
  CHECK(p.decide(f).reason == scale_reason::none); // at the maximum
  auto off = settings(1, 3);
  off.predicted_misses = false;
  autoscale_policy q{off};
  f.current = 2;
  CHECK(q.decide(f).desired == 2);
}

TEST_CASE("requests waiting with no instance start one at once (scale from zero)",
          "[autoscale]") {
  autoscale_policy p{settings(0, 4)};
  CHECK(p.decide(at(0, 0, 0)).desired == 0); // idle at zero: stays there
  auto d = p.decide(at(100, 1, 0));
  CHECK(d.desired == 1);
  CHECK(d.reason == scale_reason::cold_start);
  // and back to zero once idle for downscale_delay
  autoscale_policy z{settings(0, 4)};
  CHECK(z.decide(at(0, 0, 1)).desired == 1);
  CHECK(z.decide(at(5000, 0, 1)).desired == 0);
}

TEST_CASE("bounds set at run time apply at once, either way", "[autoscale]") {
  autoscale_policy p{settings(1, 8)};
  p.set_bounds(4, 8);
  auto d = p.decide(at(0, 0, 1));
  CHECK(d.desired == 4);
  CHECK(d.reason == scale_reason::bounds);
  p.set_bounds(1, 2);
  CHECK(p.decide(at(10, 0, 4)).desired == 2);
  CHECK(p.min_instances() == 1);
  CHECK(p.max_instances() == 2);
}

TEST_CASE("scale reasons have names for metrics and logs", "[autoscale]") {
  CHECK(std::string(to_string(scale_reason::predicted_misses)) == "predicted_misses");
  CHECK(std::string(to_string(scale_reason::cold_start)) == "cold_start");
}

TEST_CASE("a scale-down never leaves the instances that stay busier than max_busy_after_downscale",
          "[autoscale]") {
  // 4 instances 75% busy (3 busy) with 3 ongoing: 2 wanted by ongoing requests, but 2 would be
  // 150% busy: at 0.8, 3 busy needs 4.
  autoscale_policy p{settings(1, 8)};
  auto f = at(0, 3, 4);
  f.busy = 3;
  p.decide(f);
  f.now_ns = 5000 * 1'000'000LL;
  CHECK(p.decide(f).desired == 4);
  CHECK(p.average_busy() == Approx(3.0));
  // Lightly busy: down it goes, to what keeps the rest under 80% (1.2 busy: 2 instances).
  autoscale_policy q{settings(1, 8)};
  auto g = at(0, 1, 4);
  g.busy = 1.2;
  q.decide(g);
  g.now_ns = 5000 * 1'000'000LL;
  CHECK(q.decide(g).desired == 2);
  // Off: the ongoing figure alone.
  auto s = settings(1, 8);
  s.max_busy_after_downscale = 0;
  autoscale_policy r{s};
  r.decide(f);
  f.now_ns = 10000 * 1'000'000LL;
  CHECK(r.decide(f).desired == 2);
}
