// Rolling reloads: a model's workers loaded anew one at a time (actors/batcher_state.hpp).
#include "actors/batcher_state.hpp"

#include "runtime/log.hpp"

namespace actorserve::batcher_impl {

/// Ends the reload in progress: its promise answers true, or the error.
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

/// Stops the drained worker being reloaded and starts it again: it loads the model file anew,
/// warms up and reports ready (or fails: reload_failed).
void reload_restart(batcher_ptr self, bool stop_first) {
  auto& st = self->state;
  auto name = st.reload->current;
  auto sup = st.supervisor ? st.supervisor->get() : caf::actor{};
  if (!sup)
    return reload_failed(self, name, "its supervisor is restarting");
  auto wait = std::chrono::milliseconds(st.model->restart.shutdown_ms) * 2 + std::chrono::seconds(5);
  auto start = [self, sup, name, wait] {
    self->request(sup, wait, restart_child_atom::value, name)
      .then(
        [self, name](bool) {
          auto& st = self->state;
          if (st.reload && st.reload->current == name)
            st.reload->started = true;
        },
        [self, name](caf::error& e) {
          auto& st = self->state;
          if (st.reload && st.reload->current == name)
            reload_failed(self, name, "it could not be started: " + error_message(e));
        });
  };
  if (!stop_first)
    return start();
  self->request(sup, wait, terminate_child_atom::value, name)
    .then([start](bool) { start(); },
          [self, name](caf::error& e) {
            auto& st = self->state;
            if (st.reload && st.reload->current == name)
              reload_failed(self, name, "it could not be stopped: " + error_message(e));
          });
}

/// The worker being reloaded did not come back (it failed to start: a model file that does not
/// load, say): it is kept down, so that its supervisor's restarts cannot escalate and take the
/// other workers (which still serve the model as they loaded it) down with it.
void reload_failed(batcher_ptr self, const std::string& name, const std::string& why) {
  auto& st = self->state;
  st.starting.erase(name);
  st.held.insert(name);
  if (auto sup = st.supervisor ? st.supervisor->get() : caf::actor{})
    self->request(sup, std::chrono::milliseconds(st.model->restart.shutdown_ms) * 2
                         + std::chrono::seconds(5),
                  terminate_child_atom::value, name)
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

/// Reloads the next worker: no new batches for it, and once its batches are done it is stopped
/// and started again. Meanwhile it counts as starting, so that requests wait for it rather than
/// fail, also when it is the model's only worker.
void reload_next(batcher_ptr self) {
  auto& st = self->state;
  if (st.reload->left.empty())
    return reload_end(self, caf::none);
  auto name = st.reload->left.front();
  st.reload->left.pop_front();
  st.reload->current = name;
  st.reload->started = false;
  st.starting.insert(name);
  if (st.held.erase(name) > 0) { // (down since a failed reload: only started)
    logging::info({"batcher", st.model->name, 0, {}, name}, "reloading worker {} (it was down)",
                  name);
    report_status(self);
    return reload_restart(self, false);
  }
  auto it = std::find_if(st.workers.begin(), st.workers.end(),
                         [&](const worker_slot& w) { return w.name == name; });
  if (it == st.workers.end() || it->draining) {
    // (Down meanwhile: its supervisor starts it, and it loads the model file anew then.)
    st.starting.erase(name);
    return reload_next(self);
  }
  it->draining = true;
  logging::info({"batcher", st.model->name, 0, {}, name},
                "reloading worker {}: {} batch(es) to finish first", name, it->batches.size());
  if (it->batches.empty())
    remove_drained(self); // (which goes on with reload_restart)
}

/// Starts a rolling reload of this node's workers (those held down first: they add room).
caf::result<bool> start_reload(batcher_ptr self) {
  auto& st = self->state;
  if (st.reload)
    return make_error(errc::not_ready, "model '" + st.model->name + "' is being reloaded "
                                       "(worker " + st.reload->current + "); try again once "
                                       "that is done");
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
  st.reload.emplace();
  st.reload->left = std::move(names);
  st.reload->promise = self->make_response_promise<bool>();
  auto rp = st.reload->promise;
  reload_next(self);
  pump(self);
  return rp;
}

} // namespace actorserve::batcher_impl
