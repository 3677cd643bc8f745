#include "actors/supervision.hpp"

#include <deque>
#include <unordered_set>
#include <unordered_map>

#include <caf/all.hpp>

#include "runtime/error.hpp"
#include "runtime/log.hpp"
#include "runtime/messages.hpp"
#include "runtime/restart_policy.hpp"

namespace actorserve {
namespace {

struct child_state {
  caf::actor handle;        // null while down
  bool stopping = false;    // asked to stop; its down message is expected
  uint64_t stop_generation = 0;
  bool held = false; // stopped on request (terminate_child): not restarted until restart_child
  std::vector<caf::response_promise> stopped_waiters; // terminate_child requests: told once down
  crash_loop_backoff crash_loop{std::chrono::milliseconds(0), std::chrono::milliseconds(0)};
  uint64_t start_generation = 0; // a cool-down's start is for the generation it was planned in
};

struct tree_state {
  supervisor_spec spec;
  std::unique_ptr<restart_tracker> tracker;
  std::vector<child_state> kids;
  std::unordered_map<caf::actor_addr, std::size_t> index_of;
  // Children whose link may still deliver an exit message (which must not be taken for the
  // parent's): down and exit messages of one child come in either order.
  std::unordered_set<caf::actor_addr> linked;
  std::deque<std::size_t> stop_queue;  // children to stop, one after another
  std::vector<std::size_t> to_restart; // start order; started when the backoff timer fires
  uint64_t restart_generation = 0;
  uint64_t stop_generation = 0;
  bool quitting = false; // stopping everything, then exit with `exit_reason`
  caf::error exit_reason;
  static inline const char* name = "supervisor";
};

using tree_actor = caf::stateful_actor<tree_state>;

const logging::fields& log_fields(tree_actor* self) {
  static thread_local logging::fields f{"supervisor"};
  f.worker = self->state.spec.name;
  return f;
}

void handle_failure(tree_actor* self, std::size_t i, const std::string& why, bool abnormal);

void start_child(tree_actor* self, std::size_t i) {
  auto& st = self->state;
  auto& spec = st.spec.children[i];
  caf::actor child;
  try {
    child = spec.start(self->system(), caf::actor_cast<caf::actor>(self));
  } catch (const std::exception& e) {
    logging::error(log_fields(self), "child {} failed to start: {}", spec.id, e.what());
    handle_failure(self, i, std::string("failed to start: ") + e.what(), true);
    return;
  }
  if (!child) {
    handle_failure(self, i, "failed to start", true);
    return;
  }
  self->monitor(child);
  self->link_to(child); // it goes down with us if we die abruptly
  st.linked.insert(child.address());
  st.kids[i].handle = child;
  st.kids[i].stopping = false;
  st.kids[i].crash_loop.on_start(self->clock().now());
  ++st.kids[i].start_generation;
  st.index_of[child.address()] = i;
}

/// Forgets child `i` (down, or abandoned because it does not stop).
void forget(tree_actor* self, std::size_t i, bool abandon) {
  auto& st = self->state;
  auto& k = st.kids[i];
  if (!k.handle)
    return;
  st.index_of.erase(k.handle.address());
  if (abandon) {
    self->demonitor(k.handle);
    self->unlink_from(k.handle);
    st.linked.erase(k.handle.address());
    self->send_exit(k.handle, caf::exit_reason::kill);
  }
  k.handle = nullptr;
  k.stopping = false;
  for (auto& rp : k.stopped_waiters)
    rp.deliver(true);
  k.stopped_waiters.clear();
}

void finish_if_done(tree_actor* self) {
  auto& st = self->state;
  if (!st.quitting || !st.stop_queue.empty())
    return;
  for (auto& k : st.kids)
    if (k.handle)
      return;
  self->quit(st.exit_reason);
}

/// Stops the next child of the stop queue (one at a time, each within its shutdown time).
void stop_next(tree_actor* self) {
  auto& st = self->state;
  while (!st.stop_queue.empty()) {
    auto i = st.stop_queue.front();
    auto& k = st.kids[i];
    if (!k.handle) {
      st.stop_queue.pop_front();
      continue;
    }
    if (k.stopping)
      return; // waiting for it
    k.stopping = true;
    k.stop_generation = ++st.stop_generation;
    self->send_exit(k.handle, caf::exit_reason::user_shutdown);
    self->delayed_send(self, st.spec.children[i].shutdown, child_timeout_atom::value,
                       static_cast<uint64_t>(i), k.stop_generation);
    return;
  }
  finish_if_done(self);
}

void stop_all_then_quit(tree_actor* self, caf::error reason) {
  auto& st = self->state;
  st.quitting = true;
  st.exit_reason = std::move(reason);
  st.to_restart.clear();
  st.stop_queue.clear();
  for (std::size_t i = st.kids.size(); i-- > 0;)
    if (st.kids[i].handle)
      st.stop_queue.push_back(i);
  stop_next(self);
}

void notify_down(tree_actor* self, std::size_t i, bool will_restart, const std::string& why) {
  if (auto& f = self->state.spec.children[i].on_down)
    f(will_restart, why);
}

/// Child `i` failed and nothing restarts it: schedules its start after its crash-loop back-off.
/// False where it has none (it stays down).
bool start_after_cooldown(tree_actor* self, std::size_t i, const std::string& why) {
  auto& st = self->state;
  auto& k = st.kids[i];
  auto& spec = st.spec.children[i];
  auto wait = k.crash_loop.on_given_up(self->clock().now());
  if (!wait)
    return false;
  logging::warn(log_fields(self), "child {} ({}) exited: {}; starting it again in {} ms "
                                  "(crash-loop back-off, {} in a row)",
                spec.id, to_string(spec.restart), why, wait->count(), k.crash_loop.in_a_row());
  if (spec.on_cooldown)
    spec.on_cooldown(*wait, k.crash_loop.in_a_row(), why);
  else
    notify_down(self, i, false, why);
  self->delayed_send(self, *wait, restart_atom::value, static_cast<uint64_t>(i),
                     k.start_generation);
  return true;
}

void handle_failure(tree_actor* self, std::size_t i, const std::string& why, bool abnormal) {
  auto& st = self->state;
  auto& spec = st.spec.children[i];
  if (st.kids[i].held) // (stopped on request: it stays down)
    return;
  std::vector<restart_type> types;
  for (auto& c : st.spec.children)
    types.push_back(c.restart);
  auto plan = plan_restart(st.spec.strategy, types, i, abnormal);
  if (plan.restart.empty()) {
    if (abnormal && start_after_cooldown(self, i, why))
      return;
    logging::info(log_fields(self), "child {} ({}) exited: {}; not restarted", spec.id,
                  to_string(spec.restart), why);
    notify_down(self, i, false, why);
    return;
  }
  auto delay = st.tracker->on_failure(self->clock().now());
  if (!delay) {
    auto text = "supervisor '" + st.spec.name + "' gave up: more than "
                + std::to_string(st.spec.intensity.max_restarts) + " restarts within "
                + std::to_string(st.spec.intensity.period_s) + " s; last: " + spec.id + " "
                + why;
    logging::critical(log_fields(self), "{}; stopping its children and escalating", text);
    for (std::size_t k = 0; k < st.kids.size(); ++k)
      notify_down(self, k, false, text);
    stop_all_then_quit(self, make_error(errc::escalated, text));
    return;
  }
  logging::warn(log_fields(self), "child {} {}; restarting in {} ms ({}: {} child(ren))", spec.id,
                why, delay->count(), to_string(st.spec.strategy), plan.restart.size());
  for (auto s : plan.stop)
    if (st.kids[s].handle) {
      notify_down(self, s, st.spec.children[s].restart != restart_type::temporary,
                  "stopped by " + to_string(st.spec.strategy) + " after " + spec.id + " failed");
      st.stop_queue.push_back(s);
    }
  notify_down(self, i, true, why);
  for (auto r : plan.restart)
    if (std::find(st.to_restart.begin(), st.to_restart.end(), r) == st.to_restart.end())
      st.to_restart.push_back(r);
  std::sort(st.to_restart.begin(), st.to_restart.end());
  self->delayed_send(self, *delay, restart_atom::value, ++st.restart_generation);
  stop_next(self);
}

/// Takes child `i` off the restarts the backoff timer will make.
void unschedule_restart(tree_state& st, std::size_t i) {
  st.to_restart.erase(std::remove(st.to_restart.begin(), st.to_restart.end(), i),
                      st.to_restart.end());
}

/// The index of the child called `id`; an error where there is none or everything is stopping.
caf::expected<std::size_t> child_index(tree_actor* self, const std::string& id) {
  auto& st = self->state;
  if (st.quitting)
    return make_error(errc::not_ready, "supervisor '" + st.spec.name + "' is stopping");
  for (std::size_t i = 0; i < st.spec.children.size(); ++i)
    if (st.spec.children[i].id == id)
      return i;
  return make_error(errc::invalid_input,
                    "supervisor '" + st.spec.name + "' has no child '" + id + "'");
}

/// The backoff timer of generation `generation` fired: starts what it was set for (a newer
/// failure sets a newer one), abandoning a child asked to stop that is still not down.
void restart_scheduled(tree_actor* self, uint64_t generation) {
  auto& st = self->state;
  if (generation != st.restart_generation || st.quitting)
    return;
  auto targets = std::move(st.to_restart);
  st.to_restart.clear();
  for (auto i : targets) {
    if (st.kids[i].handle) { // asked to stop but still not down: abandon it
      logging::warn(log_fields(self), "child {} did not stop in time; abandoning it",
                    st.spec.children[i].id);
      forget(self, i, true);
    }
    st.stop_queue.erase(std::remove(st.stop_queue.begin(), st.stop_queue.end(), i),
                        st.stop_queue.end());
  }
  for (auto i : targets) {
    if (st.kids[i].held)
      continue; // (stopped on request meanwhile)
    logging::info(log_fields(self), "starting child {}", st.spec.children[i].id);
    start_child(self, i);
  }
  stop_next(self);
}

/// Child `index`'s cool-down is over: it starts unless it was started (a load) or stopped on
/// request meanwhile.
void cooldown_over(tree_actor* self, uint64_t index, uint64_t generation) {
  auto& st = self->state;
  auto i = static_cast<std::size_t>(index);
  if (st.quitting || i >= st.kids.size() || st.kids[i].handle || st.kids[i].held
      || st.kids[i].start_generation != generation)
    return;
  logging::info(log_fields(self), "starting child {} after its cool-down",
                st.spec.children[i].id);
  start_child(self, i);
}

void on_child_down(tree_actor* self, const caf::down_msg& dm) {
  auto& st = self->state;
  auto it = st.index_of.find(dm.source);
  if (it == st.index_of.end())
    return;
  auto i = it->second;
  if (dm.reason == caf::exit_reason::normal) // a normal exit sends no exit message
    st.linked.erase(dm.source);
  bool asked = st.kids[i].stopping;
  forget(self, i, false);
  if (asked || st.quitting) {
    if (!st.stop_queue.empty() && st.stop_queue.front() == i)
      st.stop_queue.pop_front();
    stop_next(self);
    return;
  }
  bool abnormal = dm.reason && dm.reason != caf::exit_reason::normal
                  && dm.reason != caf::exit_reason::user_shutdown;
  handle_failure(self, i, dm.reason ? "exited: " + error_message(dm.reason) : "exited", abnormal);
}

/// As OTP's terminate_child: stop it within its shutdown time and keep it down.
caf::result<bool> terminate_child(tree_actor* self, const std::string& id) {
  auto& st = self->state;
  auto i = child_index(self, id);
  if (!i)
    return std::move(i.error());
  auto& k = st.kids[*i];
  k.held = true;
  unschedule_restart(st, *i);
  if (!k.handle)
    return true;
  logging::info(log_fields(self), "stopping child {} on request", id);
  auto rp = self->make_response_promise();
  k.stopped_waiters.push_back(rp);
  if (!k.stopping
      && std::find(st.stop_queue.begin(), st.stop_queue.end(), *i) == st.stop_queue.end())
    st.stop_queue.push_back(*i);
  stop_next(self);
  return caf::delegated<bool>{};
}

/// As OTP's restart_child: start a child that is down (stopped on request, or not restarted by
/// its restart type) again; no restart intensity is spent.
caf::result<bool> restart_child(tree_actor* self, const std::string& id) {
  auto& st = self->state;
  auto i = child_index(self, id);
  if (!i)
    return std::move(i.error());
  auto& k = st.kids[*i];
  if (k.handle)
    return make_error(errc::invalid_input, "child '" + id + "' of supervisor '" + st.spec.name
                                             + "' is running; stop it first");
  k.held = false;
  unschedule_restart(st, *i);
  logging::info(log_fields(self), "starting child {} on request", id);
  start_child(self, *i);
  return true;
}

/// A child asked to stop did not within its shutdown time: killed and abandoned.
void child_timeout(tree_actor* self, uint64_t index, uint64_t generation) {
  auto& st = self->state;
  auto i = static_cast<std::size_t>(index);
  if (i >= st.kids.size() || !st.kids[i].stopping || st.kids[i].stop_generation != generation)
    return;
  logging::warn(log_fields(self), "child {} did not stop within {} ms; killed and abandoned",
                st.spec.children[i].id, st.spec.children[i].shutdown.count());
  forget(self, i, true);
  if (!st.stop_queue.empty() && st.stop_queue.front() == i)
    st.stop_queue.pop_front();
  stop_next(self);
}

/// A blocked call cannot be cancelled: the hung child's thread is abandoned (it ends when the
/// call returns, if ever) and the child is handled as failed.
void child_hung(tree_actor* self, const std::string& id) {
  auto& st = self->state;
  for (std::size_t i = 0; i < st.kids.size(); ++i)
    if (st.spec.children[i].id == id && st.kids[i].handle && !st.quitting) {
      forget(self, i, true);
      handle_failure(self, i, "hung: a batch outlived execution_timeout_ms", true);
    }
}

caf::behavior tree_fn(tree_actor* self, supervisor_spec spec) {
  auto& st = self->state;
  st.tracker = std::make_unique<restart_tracker>(spec.intensity, spec.uniform);
  st.kids.resize(spec.children.size());
  for (std::size_t i = 0; i < st.kids.size(); ++i)
    st.kids[i].crash_loop = crash_loop_backoff{spec.children[i].cooldown,
                                               spec.children[i].cooldown_max};
  st.spec = std::move(spec);
  self->set_down_handler([self](caf::down_msg& dm) { on_child_down(self, dm); });
  self->set_exit_handler([self](caf::exit_msg& em) {
    auto& st = self->state;
    if (st.linked.erase(em.source) > 0)
      return; // a child's exit: its down message handles it
    if (!st.quitting)
      stop_all_then_quit(self, em.reason);
  });
  for (std::size_t i = 0; i < st.kids.size(); ++i) {
    st.kids[i].held = st.spec.children[i].start_held;
    if (!st.kids[i].held)
      start_child(self, i);
  }
  return {
    [self](restart_atom, uint64_t generation) { restart_scheduled(self, generation); },
    [self](restart_atom, uint64_t index, uint64_t generation) {
      cooldown_over(self, index, generation);
    },
    [self](terminate_child_atom, const std::string& id) { return terminate_child(self, id); },
    [self](restart_child_atom, const std::string& id) { return restart_child(self, id); },
    [self](child_timeout_atom, uint64_t index, uint64_t generation) {
      child_timeout(self, index, generation);
    },
    [self](worker_hung_atom, const std::string& id) { child_hung(self, id); },
  };
}

} // namespace

caf::actor spawn_supervisor_tree(caf::actor_system& sys, supervisor_spec spec) {
  return sys.spawn(tree_fn, std::move(spec));
}

} // namespace actorserve
