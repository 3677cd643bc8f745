// The generic supervisor under CAF's deterministic test coordinator: strategies, restart types,
// backoff, intensity and escalation to a parent supervisor, hung children, ordered shutdown.
#include <catch2/catch.hpp>

#include <map>

#include <caf/all.hpp>

#include "actors/supervision.hpp"
#include "runtime/error.hpp"
#include "runtime/messages.hpp"
#include "deterministic_system.hpp"
#include "test_support.hpp"

using namespace actorserve;
using namespace std::chrono_literals;

namespace {

/// Records what happens to the children: "start a", "stop a", ... in order.
struct journal {
  std::vector<std::string> events;
  std::map<std::string, caf::actor> current;
  std::map<std::string, int> starts;
};

/// A child that quits normally on tick_atom, fails on ready_atom, and otherwise just lives.
caf::behavior plain_child(caf::event_based_actor* self, std::shared_ptr<journal> j, std::string id) {
  self->attach_functor([j, id](const caf::error&) { j->events.push_back("stop " + id); });
  return {[self](tick_atom) { self->quit(); },
          [self](ready_atom) { self->quit(make_error(errc::internal, "boom")); }};
}

child_spec child(std::shared_ptr<journal> j, const std::string& id,
                 restart_type type = restart_type::permanent) {
  child_spec c;
  c.id = id;
  c.restart = type;
  c.shutdown = 1000ms;
  c.start = [j, id](caf::actor_system& sys, const caf::actor&) {
    auto a = sys.spawn(plain_child, j, id);
    j->events.push_back("start " + id);
    j->current[id] = a;
    ++j->starts[id];
    return a;
  };
  return c;
}

restart_config intensity(uint32_t max_restarts, uint32_t backoff_ms = 100) {
  return test::restart_settings(max_restarts, 60, backoff_ms);
}

struct fixture : test::deterministic_system {
  std::shared_ptr<journal> j = std::make_shared<journal>();

  caf::actor start(restart_strategy strategy, std::vector<child_spec> children,
                   restart_config r = intensity(5)) {
    supervisor_spec s;
    s.name = "test";
    s.strategy = strategy;
    s.intensity = r;
    s.children = std::move(children);
    auto sup = spawn_supervisor_tree(*sys, std::move(s));
    sched->run();
    return sup;
  }

  void crash(const std::string& id) {
    caf::anon_send(j->current.at(id), ready_atom::value);
    sched->run();
  }

  /// Runs the backoff timer out.
  void after(std::chrono::milliseconds d) {
    sched->advance_time(d);
    sched->run();
  }

  std::vector<std::string> take() { return std::exchange(j->events, {}); }

  /// Children a, b, c under `strategy`; b fails; what happens until the restart is done.
  std::vector<std::string> events_after_b_fails(restart_strategy strategy) {
    auto sup = start(strategy, {child(j, "a"), child(j, "b"), child(j, "c")});
    take();
    crash("b");
    after(100ms);
    auto ev = take();
    caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
    sched->run();
    return ev;
  }
};

using events = std::vector<std::string>;

} // namespace

TEST_CASE("one_for_one restarts the failed child alone, after its backoff", "[supervision]") {
  fixture f;
  auto sup = f.start(restart_strategy::one_for_one, {child(f.j, "a"), child(f.j, "b"), child(f.j, "c")});
  CHECK(f.take() == events{"start a", "start b", "start c"});
  f.crash("b");
  CHECK(f.take() == events{"stop b"});
  f.after(99ms);
  CHECK(f.take().empty()); // backoff_initial_ms 100
  f.after(1ms);
  CHECK(f.take() == events{"start b"});
  f.crash("b"); // the second restart within the period waits twice as long
  f.take();
  f.after(199ms);
  CHECK(f.take().empty());
  f.after(1ms);
  CHECK(f.take() == events{"start b"});
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  f.sched->run();
}

TEST_CASE("one_for_all stops the siblings in reverse order and restarts all in order",
          "[supervision]") {
  fixture f;
  CHECK(f.events_after_b_fails(restart_strategy::one_for_all)
        == events{"stop b", "stop c", "stop a", "start a", "start b", "start c"});
}

TEST_CASE("rest_for_one restarts the failed child and the ones started after it",
          "[supervision]") {
  fixture f;
  CHECK(f.events_after_b_fails(restart_strategy::rest_for_one)
        == events{"stop b", "stop c", "start b", "start c"});
}

TEST_CASE("transient children return only after abnormal exits, temporary ones never",
          "[supervision]") {
  fixture f;
  auto sup = f.start(restart_strategy::one_for_one,
                     {child(f.j, "t", restart_type::transient), child(f.j, "x", restart_type::temporary)});
  f.take();
  caf::anon_send(f.j->current.at("t"), tick_atom::value); // a normal exit
  f.after(1s);
  CHECK(f.take() == events{"stop t"});
  f.crash("x");
  f.after(1s);
  CHECK(f.take() == events{"stop x"});
  CHECK(f.j->starts["t"] == 1);
  CHECK(f.j->starts["x"] == 1);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  f.sched->run();
}

TEST_CASE("past its intensity a supervisor stops its children and escalates to its parent",
          "[supervision]") {
  fixture f;
  auto j = f.j;
  child_spec inner;
  inner.id = "inner";
  inner.start = [j](caf::actor_system& sys, const caf::actor&) {
    supervisor_spec s;
    s.name = "inner";
    s.intensity = intensity(1, 10);
    s.children = {child(j, "a"), child(j, "b")};
    j->events.push_back("start inner");
    return spawn_supervisor_tree(sys, std::move(s));
  };
  std::vector<caf::error> exits;
  auto outer = f.start(restart_strategy::one_for_one, {inner}, intensity(1, 50));
  outer->attach_functor([&exits](const caf::error& e) { exits.push_back(e); });
  CHECK(f.take() == events{"start inner", "start a", "start b"});
  f.crash("a"); // restart 1 of 1
  f.after(10ms);
  CHECK(f.take() == events{"stop a", "start a"});
  f.crash("a"); // one too many: inner stops b and a, and exits
  CHECK(f.take() == events{"stop a", "stop b"});
  f.after(50ms); // the outer supervisor restarts the inner one (its restart 1 of 1)
  CHECK(f.take() == events{"start inner", "start a", "start b"});
  f.crash("a");
  f.after(10ms);
  f.crash("a"); // inner escalates again; outer is past its own intensity: it escalates too
  f.after(1s);
  REQUIRE(exits.size() == 1);
  CHECK(error_code(exits[0]) == errc::escalated);
  CHECK(error_message(exits[0]).find("supervisor 'test' gave up: more than 1 restarts") == 0);
}

TEST_CASE("a hung child is abandoned and handled as failed", "[supervision]") {
  fixture f;
  auto sup = f.start(restart_strategy::one_for_one, {child(f.j, "a"), child(f.j, "w")});
  f.take();
  auto old = f.j->current.at("w");
  caf::anon_send(sup, worker_hung_atom::value, std::string("w"));
  f.sched->run();
  f.after(100ms);
  auto ev = f.take();
  CHECK(ev == events{"stop w", "start w"}); // killed (it would never stop by itself) and replaced
  CHECK(f.j->current.at("w") != old);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  f.sched->run();
}

TEST_CASE("a supervisor told to stop stops its children in reverse start order",
          "[supervision]") {
  fixture f;
  auto sup = f.start(restart_strategy::one_for_one, {child(f.j, "a"), child(f.j, "b"), child(f.j, "c")});
  f.take();
  bool done = false;
  sup->attach_functor([&done](const caf::error&) { done = true; });
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  f.sched->run();
  CHECK(f.take() == events{"stop c", "stop b", "stop a"});
  CHECK(done);
}

namespace {

/// Sends `msg` to `sup` as a request and journals the answer: "<label> ok" or "<label> error: ...".
void ask(fixture& f, const caf::actor& sup, caf::message msg, const std::string& label) {
  f.sys->spawn([sup, msg, j = f.j, label](caf::event_based_actor* self) {
    self->request(sup, std::chrono::seconds(10), msg)
      .then([j, label](bool) { j->events.push_back(label + " ok"); },
            [j, label](caf::error& e) {
              j->events.push_back(label + " error: " + error_message(e));
            });
  });
  f.sched->run();
}

} // namespace

TEST_CASE("terminate_child keeps a child down until restart_child starts it, as in OTP",
          "[supervision]") {
  fixture f;
  auto sup = f.start(restart_strategy::one_for_one,
                     {child(f.j, "a"), child(f.j, "b"), child(f.j, "c", restart_type::temporary)});
  f.take();
  ask(f, sup, caf::make_message(terminate_child_atom::value, std::string("b")), "terminate b");
  CHECK(f.take() == events{"stop b", "terminate b ok"});
  f.after(10s);
  CHECK(f.take().empty()); // a permanent child stopped on request is not restarted
  f.crash("a"); // the others are supervised as before
  f.after(100ms);
  CHECK(f.take() == events{"stop a", "start a"});
  ask(f, sup, caf::make_message(terminate_child_atom::value, std::string("b")), "again");
  CHECK(f.take() == events{"again ok"}); // (already down)
  ask(f, sup, caf::make_message(restart_child_atom::value, std::string("b")), "restart b");
  CHECK(f.take() == events{"start b", "restart b ok"});
  ask(f, sup, caf::make_message(restart_child_atom::value, std::string("b")), "restart b");
  CHECK(f.take()
        == events{"restart b error: child 'b' of supervisor 'test' is running; stop it first"});
  f.crash("b"); // and it is supervised again: restarted after its backoff
  f.after(200ms);
  CHECK(f.take() == events{"stop b", "start b"});
  // A temporary child that failed (not restarted) can be started again on request.
  f.crash("c");
  f.after(10s);
  CHECK(f.take() == events{"stop c"});
  ask(f, sup, caf::make_message(restart_child_atom::value, std::string("c")), "restart c");
  CHECK(f.take() == events{"start c", "restart c ok"});
  ask(f, sup, caf::make_message(terminate_child_atom::value, std::string("x")), "terminate x");
  CHECK(f.take() == events{"terminate x error: supervisor 'test' has no child 'x'"});
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  f.sched->run();
}

namespace {

/// A temporary child with a crash-loop back-off of 1 s doubling up to 4 s, whose cool-downs are
/// journaled as "cooldown <id> <ms> <in a row>".
child_spec cooling_child(std::shared_ptr<journal> j, const std::string& id) {
  auto c = child(j, id, restart_type::temporary);
  c.cooldown = 1s;
  c.cooldown_max = 4s;
  c.on_cooldown = [j, id](std::chrono::milliseconds wait, uint32_t in_a_row, const std::string&) {
    j->events.push_back("cooldown " + id + " " + std::to_string(wait.count()) + " "
                        + std::to_string(in_a_row));
  };
  c.on_down = [j, id](bool will_restart, const std::string&) {
    j->events.push_back(std::string(will_restart ? "restarting " : "down ") + id);
  };
  return c;
}

} // namespace

TEST_CASE("a given-up child with a crash-loop back-off is started again after a growing "
          "cool-down", "[supervision]") {
  fixture f;
  auto sup = f.start(restart_strategy::one_for_one, {child(f.j, "a"), cooling_child(f.j, "m")});
  f.take();
  f.crash("m");
  CHECK(f.take() == events{"stop m", "cooldown m 1000 1"});
  f.after(999ms);
  CHECK(f.take().empty());
  f.after(1ms);
  CHECK(f.take() == events{"start m"});
  f.crash("m"); // again at once: the cool-down doubles, up to its maximum
  CHECK(f.take() == events{"stop m", "cooldown m 2000 2"});
  f.after(2s);
  f.crash("m");
  f.after(4s);
  f.crash("m");
  CHECK(f.take() == events{"start m", "stop m", "cooldown m 4000 3", "start m", "stop m",
                           "cooldown m 4000 4"});
  f.after(4s);
  CHECK(f.take() == events{"start m"});
  f.after(4s); // served as long as the maximum: its next give-up starts a new loop
  f.crash("m");
  CHECK(f.take() == events{"stop m", "cooldown m 1000 1"});
  // A normal exit is no crash: it stays down, as its restart type says.
  f.after(1s);
  f.take();
  caf::anon_send(f.j->current.at("m"), tick_atom::value);
  f.sched->run();
  f.after(1h);
  CHECK(f.take() == events{"stop m", "down m"});
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  f.sched->run();
}

TEST_CASE("a child in its cool-down stays down when stopped on request and starts at once when "
          "asked to", "[supervision]") {
  fixture f;
  auto sup = f.start(restart_strategy::one_for_one, {cooling_child(f.j, "m")});
  f.take();
  f.crash("m");
  ask(f, sup, caf::make_message(terminate_child_atom::value, std::string("m")), "terminate m");
  f.after(1h);
  CHECK(f.take() == events{"stop m", "cooldown m 1000 1", "terminate m ok"});
  ask(f, sup, caf::make_message(restart_child_atom::value, std::string("m")), "restart m");
  CHECK(f.take() == events{"start m", "restart m ok"});
  f.crash("m"); // a load during the cool-down starts it once, not twice
  ask(f, sup, caf::make_message(restart_child_atom::value, std::string("m")), "restart m");
  f.after(1h);
  CHECK(f.take() == events{"stop m", "cooldown m 2000 2", "start m", "restart m ok"});
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  f.sched->run();
}
