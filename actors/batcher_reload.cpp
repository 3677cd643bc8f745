// Rolling reloads: a model's workers loaded anew one at a time. runtime/rolling_reload decides
// the steps; this carries them out (actors/batcher_state.hpp).
#include "actors/batcher_state.hpp"

#include "runtime/log.hpp"

namespace actorserve::batcher_impl {

namespace {

using act = rolling_reload::act;

/// Ends the reload in progress: the load answers true, or the error.
void reload_end(batcher_ptr self, caf::error err) {
  auto& st = self->state;
  auto run = std::move(*st.reload);
  st.reload.reset();
  if (err) {
    logging::error({"batcher", st.model->name}, "reload stopped: {}", error_message(err));
    run.promise.deliver(std::move(err));
  } else {
    logging::info({"batcher", st.model->name}, "reload done: every worker loaded the model anew");
    run.promise.deliver(true);
  }
}

/// Feeds a failed supervisor request about `worker` to the reload (if it is still on).
void request_failed(batcher_ptr self, const std::string& worker, const std::string& why) {
  if (self->state.reload)
    carry_out(self, self->state.reload->steps.on_request_failed(worker, why));
}

/// Stops the drained worker (with `stop_first`) and starts it again: it loads the model file
/// anew, warms up and reports ready, or fails.
void restart(batcher_ptr self, const std::string& name, bool stop_first) {
  auto& st = self->state;
  auto sup = st.supervisor ? st.supervisor->get() : caf::actor{};
  if (!sup)
    return request_failed(self, name, "its supervisor is restarting");
  auto wait = supervisor_wait(*st.model);
  auto start = [self, sup, name, wait] {
    self->request(sup, wait, restart_child_atom::value, name)
      .then(
        [self, name](bool) {
          if (self->state.reload)
            self->state.reload->steps.on_started(name);
        },
        [self, name](caf::error& e) {
          request_failed(self, name, "it could not be started: " + error_message(e));
        });
  };
  if (!stop_first)
    return start();
  self->request(sup, wait, terminate_child_atom::value, name)
    .then([start](bool) { start(); },
          [self, name](caf::error& e) {
            request_failed(self, name, "it could not be stopped: " + error_message(e));
          });
}

/// The worker being reloaded did not come back (it failed to start: a model file that does not
/// load, say): it is kept down, so that its supervisor's restarts cannot escalate and take the
/// other workers (which still serve the model as they loaded it) down with it.
void keep_down(batcher_ptr self, const std::string& name, const std::string& why) {
  auto& st = self->state;
  st.starting.erase(name);
  st.held.insert(name);
  if (auto sup = st.supervisor ? st.supervisor->get() : caf::actor{})
    self->request(sup, supervisor_wait(*st.model), terminate_child_atom::value, name)
      .then(
        [self, name](bool) {
          // (Down now, whatever its supervisor did meanwhile: a restart it made before this
          // stop said "starting" again.)
          auto& st = self->state;
          st.starting.erase(name);
          st.held.insert(name);
          report_status(self);
          fail_if_no_worker_left(self, "lost its last worker (" + name + ") in a reload");
        },
        [](caf::error&) {});
  report_status(self);
  fail_if_no_worker_left(self, "lost its last worker (" + name + ") in a reload");
  reload_end(self, make_error(errc::worker_failed,
                              "worker " + name + " of model '" + st.model->name
                                + "' did not come back from its reload: " + why
                                + " (the node's log says why; a model file that does not load?). "
                                  "It is kept down; "
                                + std::to_string(st.workers.size())
                                + " worker(s) serve the model as before. Load the model again "
                                  "once its file is fixed"));
}

/// A serving worker's turn: no new batches for it; once its batches are done it is stopped and
/// started again. Meanwhile it counts as starting, so that requests wait for it rather than
/// fail, also when it is the model's only worker.
void drain_for_reload(batcher_ptr self, const std::string& name) {
  auto& st = self->state;
  st.starting.insert(name);
  auto it = std::find_if(st.workers.begin(), st.workers.end(),
                         [&](const worker_slot& w) { return w.name == name; });
  it->draining = true;
  logging::info({"batcher", st.model->name, 0, {}, name},
                "reloading worker {}: {} batch(es) to finish first", name, it->batches.size());
  if (it->batches.empty())
    remove_drained(self); // (which goes on: on_drained)
}

} // namespace

rolling_reload::standing standing_of(const batcher_state& st, const std::string& name) {
  if (st.held.count(name))
    return rolling_reload::standing::held;
  auto it = std::find_if(st.workers.begin(), st.workers.end(),
                         [&](const worker_slot& w) { return w.name == name; });
  return it == st.workers.end() || it->draining ? rolling_reload::standing::gone
                                                : rolling_reload::standing::serving;
}

void carry_out(batcher_ptr self, rolling_reload::step step) {
  auto& st = self->state;
  switch (step.what) {
    case act::none:
      return;
    case act::drain:
      return drain_for_reload(self, step.worker);
    case act::start: // (down since a failed reload: only started)
      st.starting.insert(step.worker);
      st.held.erase(step.worker);
      logging::info({"batcher", st.model->name, 0, {}, step.worker},
                    "reloading worker {} (it was down)", step.worker);
      report_status(self);
      return restart(self, step.worker, false);
    case act::stop_start:
      return restart(self, step.worker, true);
    case act::done:
      return reload_end(self, caf::none);
    case act::failed:
      return keep_down(self, step.worker, step.why);
    case act::abandoned:
      return reload_end(self, make_error(errc::worker_failed, "worker " + step.worker + " " + step.why));
  }
}

caf::result<bool> start_reload(batcher_ptr self) {
  auto& st = self->state;
  if (st.reload)
    return make_error(errc::not_ready, "model '" + st.model->name + "' is being reloaded "
                                       "(worker " + st.reload->steps.current() + "); try again "
                                       "once that is done");
  if (!st.supervisor || !st.supervisor->get())
    return make_error(errc::not_ready, "the workers' supervisor of model '" + st.model->name
                                         + "' is restarting; try again");
  std::deque<std::string> names(st.held.begin(), st.held.end());
  for (auto& w : st.workers)
    if (!w.draining && w.handle.node() == self->node())
      names.push_back(w.name);
  if (names.empty()) // (none ready here: starting, given up, or on worker nodes)
    return false;
  logging::info({"batcher", st.model->name}, "reloading {} worker(s), one at a time",
                names.size());
  auto rp = self->make_response_promise<bool>();
  st.reload.emplace(reload_run{rolling_reload{std::move(names)}, rp});
  carry_out(self, st.reload->steps.next([&st](const std::string& n) { return standing_of(st, n); }));
  pump(self);
  return rp;
}

} // namespace actorserve::batcher_impl
