// An actor system on CAF's test coordinator, shared by the unit tests of actors: no threads of
// its own; messages run when a test says (`run`), timers fire when it moves the clock
// (`advance`). Tests of ordering and timing run here, in virtual time, never on a sleep.
#pragma once

#include <chrono>
#include <memory>

#include <caf/all.hpp>

#include "runtime/messages.hpp"

namespace actorserve::test {

struct deterministic_system {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;

  deterministic_system() {
    cfg.set("scheduler.policy", caf::atom("testing"));
    cfg.add_message_types<caf::id_block::actorserve>();
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
  }

  /// Runs every message that is due.
  void run() { sched->run(); }

  /// Moves the clock by `d` (firing the timers due by then) and runs what that makes due.
  void advance(std::chrono::nanoseconds d) {
    sched->advance_time(std::chrono::duration_cast<caf::timespan>(d));
    sched->run();
  }
};

} // namespace actorserve::test
