#include <catch2/catch.hpp>

#include "runtime/circuit_breaker.hpp"

using namespace actorserve;
using namespace std::chrono_literals;

namespace {

const time_point t0{std::chrono::seconds(100)};

breaker_config cfg() {
  breaker_config c;
  c.failure_threshold = 3;
  c.reset_timeout = 2s;
  c.max_reset_timeout = 5s;
  c.backoff_factor = 2.0;
  return c;
}

} // namespace

TEST_CASE("a breaker opens after the threshold of consecutive failures", "[breaker]") {
  circuit_breaker b{cfg()};
  b.on_failure(t0);
  b.on_failure(t0);
  CHECK(b.state(t0) == breaker_state::closed);
  CHECK(b.allow(t0));
  b.on_failure(t0);
  CHECK(b.state(t0) == breaker_state::open);
  CHECK_FALSE(b.allow(t0 + 1s));
}

TEST_CASE("a success in closed state resets the count of failures", "[breaker]") {
  circuit_breaker b{cfg()};
  b.on_failure(t0);
  b.on_failure(t0);
  b.on_success(t0);
  b.on_failure(t0);
  b.on_failure(t0);
  CHECK(b.state(t0) == breaker_state::closed);
}

TEST_CASE("an open breaker turns half-open after reset_timeout and admits one probe",
          "[breaker]") {
  circuit_breaker b{cfg()};
  for (int i = 0; i < 3; ++i)
    b.on_failure(t0);
  CHECK(b.state(t0 + 1999ms) == breaker_state::open);
  CHECK(b.state(t0 + 2s) == breaker_state::half_open);
  CHECK(b.allow(t0 + 2s));
  b.on_dispatch(t0 + 2s);
  CHECK_FALSE(b.allow(t0 + 2s)); // one probe at a time
}

TEST_CASE("a successful probe closes the breaker and resets its timeout", "[breaker]") {
  circuit_breaker b{cfg()};
  for (int i = 0; i < 3; ++i)
    b.on_failure(t0);
  b.on_dispatch(t0 + 2s);
  b.on_success(t0 + 2100ms);
  CHECK(b.state(t0 + 2100ms) == breaker_state::closed);
  CHECK(b.current_timeout() == 2s);
  CHECK(b.allow(t0 + 2100ms));
}

TEST_CASE("a failed probe reopens the breaker with a longer timeout, up to the maximum",
          "[breaker]") {
  circuit_breaker b{cfg()};
  for (int i = 0; i < 3; ++i)
    b.on_failure(t0);
  auto t = t0 + 2s;
  b.on_dispatch(t);
  b.on_failure(t);
  CHECK(b.state(t) == breaker_state::open);
  CHECK(b.current_timeout() == 4s);
  CHECK(b.state(t + 3999ms) == breaker_state::open);
  CHECK(b.state(t + 4s) == breaker_state::half_open);
  t += 4s;
  b.on_dispatch(t);
  b.on_failure(t);
  CHECK(b.current_timeout() == 5s); // capped at max_reset_timeout
  CHECK(b.reopens_at() == t + 5s);
}

TEST_CASE("a batch without a verdict neither counts as a failure nor keeps a probe going",
          "[breaker]") {
  circuit_breaker b{cfg()};
  b.on_failure(t0);
  b.on_failure(t0);
  b.on_inconclusive(t0); // closed: the count stays at 2
  CHECK(b.consecutive_failures() == 2);
  CHECK(b.state(t0) == breaker_state::closed);
  b.on_failure(t0);
  CHECK(b.state(t0) == breaker_state::open);
  // Half-open: the probe ends without a verdict; the breaker stays half-open and the next
  // batch may probe.
  auto later = t0 + 2s;
  REQUIRE(b.allow(later));
  b.on_dispatch(later);
  CHECK_FALSE(b.allow(later));
  b.on_inconclusive(later);
  CHECK(b.state(later) == breaker_state::half_open);
  CHECK(b.allow(later));
  CHECK(b.current_timeout() == 2s);
}
