// A rolling reload as events in, actions out (runtime/rolling_reload).
#include <catch2/catch.hpp>

#include <map>

#include "runtime/rolling_reload.hpp"

using namespace actorserve;
using act = rolling_reload::act;
using standing = rolling_reload::standing;

namespace {

/// Where each worker stands (serving unless said).
struct workers {
  std::map<std::string, standing> of;
  rolling_reload::standing_of where() const {
    return [this](const std::string& n) {
      auto it = of.find(n);
      return it == of.end() ? standing::serving : it->second;
    };
  }
};

} // namespace

TEST_CASE("a reload drains, restarts and waits for each worker in turn", "[reload]") {
  workers w;
  rolling_reload r{{"a", "b"}};
  auto s = r.next(w.where());
  CHECK(s.what == act::drain);
  CHECK(s.worker == "a");
  CHECK(r.on_drained("b").what == act::none); // not its turn
  s = r.on_drained("a");
  CHECK(s.what == act::stop_start);
  CHECK(s.worker == "a");
  CHECK(r.on_starting("a").what == act::none); // (stopped, being started: not a failure yet)
  r.on_started("a");
  CHECK(r.on_ready("b", w.where()).what == act::none);
  s = r.on_ready("a", w.where());
  CHECK(s.what == act::drain);
  CHECK(s.worker == "b");
  CHECK(r.current() == "b");
  CHECK(r.on_drained("b").what == act::stop_start);
  r.on_started("b");
  CHECK(r.on_ready("b", w.where()).what == act::done);
  CHECK(r.on_ready("b", w.where()).what == act::none); // over: nothing more
}

TEST_CASE("a worker held down since a failed reload is only started, and one gone meanwhile is "
          "skipped", "[reload]") {
  workers w;
  w.of["held"] = standing::held;
  w.of["gone"] = standing::gone;
  rolling_reload r{{"held", "gone", "c"}};
  auto s = r.next(w.where());
  CHECK(s.what == act::start);
  CHECK(s.worker == "held");
  r.on_started("held");
  s = r.on_ready("held", w.where());
  CHECK(s.what == act::drain); // "gone" skipped
  CHECK(s.worker == "c");
  rolling_reload nothing_left{{"gone"}};
  CHECK(nothing_left.next(w.where()).what == act::done);
}

TEST_CASE("a worker that goes down after it was started again failed its reload, which stops "
          "there", "[reload]") {
  workers w;
  rolling_reload r{{"a", "b"}};
  r.next(w.where());
  r.on_drained("a");
  r.on_started("a");
  auto s = r.on_starting("a"); // its supervisor restarts it: the new file did not load
  CHECK(s.what == act::failed);
  CHECK(s.worker == "a");
  CHECK(s.why == "it failed to start");
  CHECK(r.on_ready("a", w.where()).what == act::none); // over: "b" is not reloaded
}

TEST_CASE("a supervisor request that fails, or a worker given up, ends the reload with the "
          "reason", "[reload]") {
  workers w;
  rolling_reload stop_failed{{"a"}};
  stop_failed.next(w.where());
  CHECK(stop_failed.on_request_failed("b", "no").what == act::none); // not its turn
  auto s = stop_failed.on_request_failed("a", "it could not be stopped: timeout");
  CHECK(s.what == act::failed);
  CHECK(s.why == "it could not be stopped: timeout");
  rolling_reload given_up{{"a"}};
  given_up.next(w.where());
  s = given_up.on_given_up("a");
  CHECK(s.what == act::abandoned);
  CHECK(s.why == "was given up by its supervisor while it was being reloaded");
  CHECK(given_up.on_given_up("a").what == act::none);
}
