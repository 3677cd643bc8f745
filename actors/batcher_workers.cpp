// The batcher's workers: who is ready, starting, leaving, hung or gone (actors/batcher_state.hpp).
#include "actors/batcher_state.hpp"

#include "runtime/log.hpp"

namespace actorserve::batcher_impl {

namespace {

/// A worker of another node left: its series say so (this node's own workers' state is their
/// supervisor's to say).
void mark_left(const worker_slot& w) {
  if (w.stats && !w.stats->own)
    w.stats->set_phase(worker_phase::stopped);
}

/// Takes a worker out of service (it died or hung): its in-flight batch fails with `why` (and is
/// retried where allowed). When `restarting`, and unless the supervisor gave it up, it counts as
/// starting, so that requests meanwhile wait (bounded by their deadlines) instead of failing fast.
void drop_worker(batcher_ptr self, std::vector<worker_slot>::iterator it, bool restarting,
                 const caf::error& why) {
  auto& st = self->state;
  auto name = it->name;
  auto batches = it->batches;
  st.workers.erase(it);
  bool replaced = std::any_of(st.workers.begin(), st.workers.end(),
                              [&](const worker_slot& w) { return w.name == name; });
  if (restarting && !st.given_up.count(name) && !replaced)
    st.starting.insert(name);
  for (auto batch : batches)
    finish_batch(self, batch, nullptr, why);
  report_status(self);
}

circuit_breaker make_breaker(const model_config& model) {
  const auto& b = model.breaker;
  breaker_config bc;
  bc.failure_threshold = b.failure_threshold;
  bc.reset_timeout = std::chrono::milliseconds(b.reset_timeout_ms);
  bc.max_reset_timeout = std::chrono::milliseconds(b.max_reset_timeout_ms);
  bc.backoff_factor = b.backoff_factor;
  return circuit_breaker{bc};
}

} // namespace

/// Removes the leaving workers that have no batch left, and tells whoever asked (a worker being
/// reloaded is stopped and started again).
void remove_drained(batcher_ptr self) {
  auto& st = self->state;
  std::vector<std::string> left;
  for (auto it = st.workers.begin(); it != st.workers.end();) {
    if (!it->draining || !it->batches.empty()) {
      ++it;
      continue;
    }
    logging::info({"batcher", st.model->name, 0, {}, it->name}, "worker {} left (drained)",
                  it->name);
    self->demonitor(it->handle.address());
    mark_left(*it);
    if (it->drained)
      it->drained->deliver(true);
    if (it->parking)
      park(self, it->name);
    left.push_back(it->name);
    it = st.workers.erase(it);
  }
  report_status(self);
  for (auto& name : left)
    if (st.reload)
      carry_out(self, st.reload->steps.on_drained(name));
}

/// A batch that outlived execution_timeout marks its worker hung: the worker takes no more
/// work, the batch's requests are retried elsewhere, and the supervisor replaces the worker.
void detect_hangs(batcher_ptr self, time_point now) {
  auto& st = self->state;
  std::vector<std::pair<uint64_t, std::string>> hung;
  for (auto& kv : st.in_flight)
    if (kv.second.hang_deadline && *kv.second.hang_deadline <= now)
      hung.emplace_back(kv.first, kv.second.worker_name);
  for (auto& [batch_id, name] : hung) {
    logging::error({"batcher", st.model->name, 0, {}, name},
                   "worker hung: its batch ran longer than execution_timeout_ms {}",
                   st.model->execution_timeout_ms);
    if (auto sup = st.supervisor ? st.supervisor->get() : caf::actor{}) // it starts a replacement
      caf::anon_send(sup, worker_hung_atom::value, name);
    auto why = make_error(errc::worker_failed,
                          "worker " + name + " hung: the batch ran longer than "
                            "execution_timeout_ms "
                            + std::to_string(st.model->execution_timeout_ms));
    auto it = std::find_if(st.workers.begin(), st.workers.end(),
                           [id = batch_id](const worker_slot& w) { return w.holds(id); });
    if (it == st.workers.end()) {
      finish_batch(self, batch_id, nullptr, why);
      continue;
    }
    self->demonitor(it->handle.address());
    drop_worker(self, it, true, why);
  }
}

void on_worker_down(batcher_ptr self, const caf::down_msg& dm) {
  auto& st = self->state;
  auto it = std::find_if(st.workers.begin(), st.workers.end(),
                         [&](const worker_slot& w) { return w.handle.address() == dm.source; });
  if (it == st.workers.end())
    return;
  auto name = it->name;
  bool shutdown = dm.reason == caf::exit_reason::user_shutdown;
  if (shutdown)
    logging::info({"batcher", st.model->name, 0, {}, name}, "worker stopped");
  else
    logging::warn({"batcher", st.model->name, 0, {}, name}, "worker is down: {}",
                  error_message(dm.reason));
  // The supervisor restarts a crashed local worker unless it gives it up (and says so again
  // for an isolated one, whose process it restarts); a worker of another node of the cluster
  // comes back only if its node rejoins, so requests do not wait for it.
  bool local = dm.source.node() == self->node();
  mark_left(*it);
  drop_worker(self, it, !shutdown && local,
              make_error(errc::worker_failed, "worker " + name + " of model '" + st.model->name
                                                + "' died while running this request's batch: "
                                                + error_message(dm.reason)));
  pump(self);
}

void on_worker_starting(batcher_ptr self, std::string& name) {
  auto& st = self->state;
  // The worker being reloaded, started again, is down again: it did not come back.
  if (st.reload)
    if (auto step = st.reload->steps.on_starting(name); step.what != rolling_reload::act::none)
      return carry_out(self, step);
  st.given_up.erase(name);
  st.held.erase(name);
  st.starting.insert(std::move(name));
  report_status(self);
}

void on_given_up(batcher_ptr self, std::string& name) {
  auto& st = self->state;
  st.starting.erase(name);
  st.given_up.insert(name);
  report_status(self);
  if (st.reload)
    carry_out(self, st.reload->steps.on_given_up(name));
  fail_if_no_worker_left(self, "lost its last worker (" + name + ")");
}

void on_worker_ready(batcher_ptr self, caf::actor& handle, std::string& name, uint32_t capacity) {
  auto w = caf::actor_cast<worker_actor>(handle);
  auto& st = self->state;
  st.starting.erase(name);
  self->monitor(w);
  // Its series: a local worker's exist from the start; another node's are made as it joins.
  // (An isolated worker, in its own process, cannot report its state itself.)
  auto* wm = st.model_stats ? st.model_stats->add_worker(name, worker_spec::device_of(name)) : nullptr;
  if (wm)
    wm->set_phase(worker_phase::ready);
  worker_slot slot{std::move(w), name, std::max<uint32_t>(capacity, 1), {}, make_breaker(*st.model),
                   false, std::nullopt, staging_estimate{}, wm};
  // (Scaled down while it was starting: its stop is on the way; it takes no batch meanwhile.)
  slot.draining = st.scaling.stopping.count(name) > 0;
  st.workers.push_back(std::move(slot));
  logging::info({"batcher", st.model->name, 0, {}, name}, "worker {} is ready ({} ready)", name,
                st.workers.size());
  report_status(self);
  pump(self);
  if (st.reload) // (the worker being reloaded is back: the next one)
    carry_out(self, st.reload->steps.on_ready(
                      name, [&st](const std::string& n) { return standing_of(st, n); }));
}

/// A worker leaves: it takes no new batches; the answer comes once its batches are done.
caf::result<bool> drain_worker(batcher_ptr self, const caf::actor& worker) {
  auto& st = self->state;
  auto it = std::find_if(st.workers.begin(), st.workers.end(), [&](const worker_slot& w) {
    return w.handle.address() == worker.address();
  });
  if (it == st.workers.end())
    return true; // not (or no longer) ours
  it->draining = true;
  logging::info({"batcher", st.model->name, 0, {}, it->name},
                "worker {} is leaving: {} batch(es) to finish", it->name, it->batches.size());
  if (it->batches.empty()) {
    remove_drained(self);
    pump(self);
    return true;
  }
  it->drained = self->make_response_promise<bool>();
  return *it->drained;
}

} // namespace actorserve::batcher_impl
