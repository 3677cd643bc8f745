// Instances that follow the load (actors/batcher_state.hpp): the batcher reads its own figures
// (ongoing requests, queue waits, requests that will miss their deadlines), runtime/
// autoscale_policy decides, and the batcher starts parked instances through their supervisor
// (restart_child: each loads and warms up before it takes a batch) or drains instances (no new
// batch; those they hold finish) and has them stopped (terminate_child). Nothing accepted is
// lost on the way down: a leaving instance is stopped only once its batches are answered.
#include "actors/batcher_state.hpp"

#include "runtime/log.hpp"

namespace actorserve::batcher_impl {

namespace {

constexpr std::size_t max_waits_kept = 20'000;

int64_t ns_of(time_point t) {
  return duration_cast<nanoseconds>(t.time_since_epoch()).count();
}

/// Instances ready or starting (those leaving or stopped do not count); on a cluster front,
/// its worker nodes' instances.
uint32_t active_instances(const batcher_state& st) {
  auto ready = std::count_if(st.workers.begin(), st.workers.end(),
                             [](const worker_slot& w) { return !w.draining; });
  return static_cast<uint32_t>(ready) + static_cast<uint32_t>(st.starting.size());
}

/// Instances busy since the last decision, on average: the batch time that ended meanwhile
/// (each batch its worker's share: 1 / its batch slots) over the time passed. (Time-weighted:
/// a sample of the batches in flight at each tick aliased with a steady load, and read a
/// fifth-busy instance as always busy.)
double busy_instances(batcher_state& st, time_point now) {
  auto& sc = st.scaling;
  double busy = 0;
  if (sc.last_tick && now > *sc.last_tick)
    busy = (sc.busy_ns - sc.busy_ns_seen)
           / static_cast<double>(duration_cast<nanoseconds>(now - *sc.last_tick).count());
  sc.busy_ns_seen = sc.busy_ns;
  sc.last_tick = now;
  return busy;
}

double ongoing_requests(const batcher_state& st) {
  std::size_t n = st.waiting.size();
  for (auto& kv : st.in_flight)
    n += kv.second.answers->open();
  return static_cast<double>(n);
}

/// The configured quantile of queue waits (ms): dispatched within the look-back window, and
/// those of requests still queued (a queue that does not move must count).
double wait_quantile(batcher_state& st, time_point now) {
  auto& sc = st.scaling;
  auto horizon = now - std::chrono::milliseconds(st.model->autoscaling.look_back_ms);
  while (!sc.waits.empty() && sc.waits.front().first < horizon)
    sc.waits.pop_front();
  std::vector<double> all;
  all.reserve(sc.waits.size() + st.waiting.size());
  for (auto& w : sc.waits)
    all.push_back(w.second);
  for (auto& kv : st.waiting)
    all.push_back(duration_cast<std::chrono::microseconds>(now - kv.second.enqueued).count() / 1e3);
  if (all.empty())
    return 0;
  auto k = static_cast<std::size_t>(st.model->autoscaling.queue_wait_quantile
                                    * static_cast<double>(all.size() - 1) + 0.5);
  std::nth_element(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end());
  return all[k];
}

/// Queued requests that will not make their deadlines at the pace the ready instances keep:
/// in arrival order, request k waits for the batches before it, as many at once as the ready
/// instances hold, each taking the smoothed batch time.
uint32_t predicted_misses(const batcher_state& st, time_point now) {
  uint64_t slots = 0;
  for (auto& w : st.workers)
    if (!w.draining)
      slots += w.capacity;
  if (slots == 0 || st.scaling.batch_ms <= 0 || st.waiting.empty())
    return 0;
  std::vector<std::pair<time_point, int64_t>> queued; // (enqueued, deadline)
  queued.reserve(st.waiting.size());
  for (auto& kv : st.waiting)
    queued.emplace_back(kv.second.enqueued, kv.second.req.deadline_ns);
  std::sort(queued.begin(), queued.end());
  uint64_t per_batch = std::max<uint32_t>(st.model->max_batch_size, 1);
  uint64_t busy = st.in_flight.size(); // (batches already running take their slots first)
  uint32_t misses = 0;
  for (std::size_t k = 0; k < queued.size(); ++k) {
    uint64_t batches_before = busy + k / per_batch;
    auto rounds = batches_before / slots + 1;
    auto eta = ns_of(now) + static_cast<int64_t>(static_cast<double>(rounds) * st.scaling.batch_ms
                                                 * 1e6);
    if (queued[k].second > 0 && eta > queued[k].second)
      ++misses;
  }
  return misses;
}

void count_decision(batcher_state& st, uint32_t from, uint32_t to, scale_reason why) {
  logging::info({"batcher", st.model->name}, "scaling {} -> {} instance(s): {}", from, to,
                to_string(why));
  if (st.model_stats && to != from)
    st.model_stats->scale_decisions[to > from ? 0 : 1][static_cast<std::size_t>(why)].fetch_add(
      1, std::memory_order_relaxed);
}

/// Starts parked instance `name` through its supervisor; requests wait for it meanwhile.
void start_instance(batcher_ptr self, const std::string& name) {
  auto& st = self->state;
  auto sup = st.supervisor ? st.supervisor->get() : caf::actor{};
  if (!sup)
    return;
  st.scaling.parked.erase(name);
  st.starting.insert(name);
  self->request(sup, supervisor_wait(*st.model), restart_child_atom::value, name)
    .then([](bool) {},
          [self, name](caf::error& e) {
            auto& st = self->state;
            logging::error({"batcher", st.model->name, 0, {}, name},
                           "instance {} could not be started: {}", name, error_message(e));
            st.starting.erase(name);
            st.scaling.parked.insert(name);
            report_status(self);
            fail_if_no_worker_left(self, "could not start an instance (" + name + ")");
          });
}

/// Takes one instance away: one still starting is stopped at once; a ready one is drained first
/// (it takes no new batch, finishes those it holds, then stops). The last in start order goes.
bool remove_one(batcher_ptr self) {
  auto& st = self->state;
  for (auto it = st.scaling.names.rbegin(); it != st.scaling.names.rend(); ++it) {
    if (st.starting.count(*it)) {
      st.starting.erase(*it);
      park(self, *it);
      return true;
    }
    auto w = std::find_if(st.workers.begin(), st.workers.end(),
                          [&](const worker_slot& s) { return s.name == *it && !s.draining; });
    if (w != st.workers.end()) {
      w->draining = w->parking = true;
      logging::info({"batcher", st.model->name, 0, {}, w->name},
                    "instance {} leaves (scaled down): {} batch(es) to finish", w->name,
                    w->batches.size());
      if (w->batches.empty())
        remove_drained(self);
      return true;
    }
  }
  return false;
}

/// Starts or removes instances until `desired` are ready or starting.
void apply(batcher_ptr self) {
  auto& st = self->state;
  // (A reload's own stops and starts go first; a front only says what it wants.)
  if (st.reload || st.scaling.desired < 0 || st.scaling.names.empty())
    return;
  auto want = static_cast<uint32_t>(st.scaling.desired);
  for (auto n = active_instances(st); n < want; ++n) {
    auto next = std::find_if(st.scaling.names.begin(), st.scaling.names.end(),
                             [&](const std::string& x) { return st.scaling.parked.count(x) > 0; });
    if (next == st.scaling.names.end())
      break;
    start_instance(self, *next);
  }
  for (auto n = active_instances(st); n > want; --n)
    if (!remove_one(self))
      break;
  report_status(self);
  pump(self);
}

void publish(batcher_state& st, double qwait_ms, uint32_t misses) {
  if (!st.model_stats)
    return;
  auto& m = *st.model_stats;
  m.desired_instances.store(st.scaling.desired, std::memory_order_relaxed);
  if (st.scaling.policy)
    m.ongoing_requests.store(st.scaling.policy->average_ongoing(), std::memory_order_relaxed);
  m.queue_wait_quantile.store(qwait_ms / 1e3, std::memory_order_relaxed);
  m.predicted_misses.store(misses, std::memory_order_relaxed);
}

} // namespace

void init_scaling(batcher_ptr self) {
  auto& st = self->state;
  auto& sc = st.scaling;
  const auto& a = st.model->autoscaling;
  if (sc.local && st.supervisor)
    for (auto& [device, i] : st.model->instance_slots())
      sc.names.push_back(worker_spec{st.model, device, i}.name());
  auto initial = st.model->initial_instances();
  for (std::size_t k = initial; k < sc.names.size(); ++k)
    sc.parked.insert(sc.names[k]);
  if (!a.enabled)
    return;
  sc.policy.emplace(a);
  sc.desired = initial;
  publish(st, 0, 0);
  self->delayed_send(self, std::chrono::milliseconds(a.interval_ms), scale_atom::value);
}

void scale_tick(batcher_ptr self) {
  auto& st = self->state;
  auto& sc = st.scaling;
  if (!sc.policy)
    return;
  auto now = self->clock().now();
  load_figures f;
  f.now_ns = ns_of(now);
  f.ongoing = ongoing_requests(st);
  f.queue_wait_ms = wait_quantile(st, now);
  f.predicted_misses = predicted_misses(st, now);
  f.current = active_instances(st);
  f.busy = busy_instances(st, now);
  auto d = sc.policy->decide(f);
  if (d.reason != scale_reason::none && static_cast<int64_t>(d.desired) != sc.desired) {
    count_decision(st, f.current, d.desired, d.reason);
    sc.desired = d.desired;
  }
  publish(st, f.queue_wait_ms, f.predicted_misses);
  apply(self);
  self->delayed_send(self, std::chrono::milliseconds(st.model->autoscaling.interval_ms),
                     scale_atom::value);
}

caf::result<uint32_t> set_instances(batcher_ptr self, uint32_t min, uint32_t max) {
  auto& st = self->state;
  auto& sc = st.scaling;
  auto name = "model '" + st.model->name + "'";
  if (sc.names.empty())
    return make_error(errc::invalid_input, name + " has no instances on this node to scale "
                                           "(a cluster front: worker nodes hold them)");
  auto room = static_cast<uint32_t>(sc.names.size());
  if (min > max || max > room || (!sc.policy && min != max) || (!sc.policy && min == 0))
    return make_error(errc::invalid_input,
                      name + (sc.policy ? " takes 0 <= min_instances <= max_instances <= "
                                            + std::to_string(room) + " (its instance slots)"
                                        : " has no autoscaling: set one count (instances), "
                                          "1 to " + std::to_string(room))
                        + "; got " + std::to_string(min) + ".." + std::to_string(max));
  auto before = active_instances(st);
  if (sc.policy) {
    sc.policy->set_bounds(min, max);
    sc.desired = std::clamp<int64_t>(sc.desired < 0 ? before : sc.desired, min, max);
  } else {
    sc.desired = min;
  }
  if (static_cast<uint32_t>(sc.desired) != before)
    count_decision(st, before, static_cast<uint32_t>(sc.desired), scale_reason::bounds);
  publish(st, 0, 0);
  apply(self);
  return static_cast<uint32_t>(sc.desired);
}

bool can_cold_start(const batcher_state& st) {
  auto& sc = st.scaling;
  return sc.policy && !sc.names.empty() && sc.policy->max_instances() > 0
         && active_instances(st) == 0;
}

void cold_start(batcher_ptr self) {
  auto& st = self->state;
  auto& sc = st.scaling;
  // (The last instance may still be leaving: once it is stopped, apply starts it again.)
  if (!can_cold_start(st))
    return;
  count_decision(st, 0, 1, scale_reason::cold_start);
  sc.desired = std::max<int64_t>(sc.desired, 1);
  publish(st, 0, 0);
  apply(self);
}

void park(batcher_ptr self, const std::string& name) {
  auto& st = self->state;
  auto sup = st.supervisor ? st.supervisor->get() : caf::actor{};
  if (!sup) {
    st.scaling.parked.insert(name);
    return;
  }
  st.scaling.stopping.insert(name);
  self->request(sup, supervisor_wait(*st.model), terminate_child_atom::value, name)
    .then(
      [self, name](bool) {
        auto& st = self->state;
        // (Down now; a start its supervisor made before this stop said "starting" again.)
        st.starting.erase(name);
        st.scaling.stopping.erase(name);
        st.scaling.parked.insert(name);
        logging::info({"batcher", st.model->name, 0, {}, name}, "instance {} stopped", name);
        report_status(self);
        apply(self); // (wanted again meanwhile?)
      },
      [self, name](caf::error& e) {
        auto& st = self->state;
        logging::error({"batcher", st.model->name, 0, {}, name},
                       "instance {} could not be stopped: {}", name, error_message(e));
        st.scaling.stopping.erase(name);
      });
}

void note_wait(batcher_state& st, time_point now, nanoseconds waited) {
  auto& sc = st.scaling;
  if (!sc.policy)
    return;
  sc.waits.emplace_back(now, static_cast<double>(waited.count()) / 1e6);
  if (sc.waits.size() > max_waits_kept)
    sc.waits.pop_front();
}

void note_batch(batcher_state& st, nanoseconds took, uint32_t capacity, bool succeeded) {
  auto& sc = st.scaling;
  sc.busy_ns += static_cast<double>(took.count()) / std::max<uint32_t>(capacity, 1);
  if (!succeeded) // (a failed batch's time says little of how long batches take)
    return;
  auto ms = static_cast<double>(took.count()) / 1e6;
  sc.batch_ms = sc.batch_ms <= 0 ? ms : 0.8 * sc.batch_ms + 0.2 * ms;
}

} // namespace actorserve::batcher_impl
