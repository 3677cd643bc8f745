#include "actors/batcher.hpp"

#include <algorithm>
#include <random>

#include "actors/batcher_state.hpp"
#include "runtime/batch_assembly.hpp"
#include "runtime/dispatch_plan.hpp"
#include "runtime/log.hpp"

namespace actorserve {
namespace batcher_impl {
namespace {

/// Drops the queued requests whose clients went away (their queue places are wanted).
void purge_cancelled(batcher_state& st) {
  for (auto it = st.waiting.begin(); it != st.waiting.end();) {
    if (!cancelled(it->second)) {
      ++it;
      continue;
    }
    st.queue->remove(it->first);
    answer_cancelled(st, it->second);
    it = st.waiting.erase(it);
  }
}

/// A request the batch it would join could not finish for before its deadline: answered now,
/// rather than computed for nobody (under overload, that work would go to requests that can
/// still make theirs). `done` is when the batch would end, as its worker's estimate has it.
caf::error doomed_error(const batcher_state& st, const queued_request& q, time_point now,
                        time_point done) {
  using std::chrono::microseconds;
  auto left_us = duration_cast<microseconds>(from_ns(q.req.deadline_ns) - now).count();
  auto needs_us = duration_cast<microseconds>(done - now).count();
  return make_error(errc::deadline_exceeded,
                    "request " + std::to_string(q.req.id) + " to model '" + st.model->name
                      + "' would reach its deadline in " + std::to_string(left_us)
                      + " us, before its batch could be done (about " + std::to_string(needs_us)
                      + " us): dropped without running it");
}

caf::error deadline_error(const batcher_state& st, const queued_request& q, time_point now,
                          bool in_flight) {
  auto waited_us = duration_cast<std::chrono::microseconds>(now - q.enqueued).count();
  return make_error(errc::deadline_exceeded,
                    "request " + std::to_string(q.req.id) + " to model '" + st.model->name
                      + "' reached its deadline after " + std::to_string(waited_us) + " us "
                      + (in_flight ? "while its batch was running"
                                   : "in the queue, before a worker was free"));
}

/// A request without its data: what the batcher keeps of one it hands over whole (to answer and
/// trace it), and what a worker's copy of one it keeps starts from.
infer_request identity_of(const infer_request& r) {
  infer_request x;
  x.id = r.id;
  x.client_id = r.client_id;
  x.deadline_ns = r.deadline_ns;
  x.trace_id = r.trace_id;
  x.span_id = r.span_id;
  x.sampled = r.sampled;
  return x;
}

/// A queued request leaving for a worker: its wait is observed, and the worker gets the request
/// (a copy sharing the tensors where a retry may need them, else the tensors themselves: the
/// batcher keeps what it needs to answer).
infer_request hand_over(batcher_state& st, queued_request& q, time_point now) {
  q.dispatched = now;
  if (st.model_stats) {
    auto waited = duration_cast<nanoseconds>(now - q.enqueued).count();
    st.model_stats->queue_seconds.observe(static_cast<double>(waited) * 1e-9);
    st.model_stats->queue.add(waited);
  }
  note_wait(st, now, duration_cast<nanoseconds>(now - q.enqueued));
  ++q.attempts;
  if (q.req.sampled)
    span_dispatched(st, q, now);
  if (st.model->max_retries > 0) { // kept whole: a retry needs the inputs again; the worker gets
    auto w = identity_of(q.req);     // what it reads (worker.cpp, batch_assembly.cpp)
    w.inputs = q.req.inputs;         // (views: the bytes are shared)
    w.outputs = q.req.outputs;
    w.fault = q.req.fault;
    return w;
  }
  return std::exchange(q.req, identity_of(q.req));
}

/// Who answers the batch's requests. Its worker does (batch_answers.hpp) where it is in this
/// process (an isolated worker's relay is too, but the claims stay here: batch_job crosses to the
/// worker's process without them), the batch is not traced (its spans end here), and each
/// request's promise answers a plain request; else the batcher answers them all.
std::shared_ptr<batch_answers> answers_for(batcher_ptr self, const worker_slot& w,
                                           in_flight_batch& b) {
  auto& st = self->state;
  auto a = std::make_shared<batch_answers>(b.requests.size());
  a->model = st.model->name;
  a->version = st.model->version;
  a->worker = b.worker_name;
  a->rows = b.rows;
  auto plain = [](queued_request& q) {
    caf::response_promise& p = q.promise;
    return p.pending() && p.stages().empty() && p.id().is_request();
  };
  if (b.remote || !b.span_id.empty() || !std::all_of(b.requests.begin(), b.requests.end(), plain))
    return a;
  a->replies.reserve(b.requests.size());
  for (auto& q : b.requests) {
    caf::response_promise& p = q.promise;
    a->replies.push_back({p.source(), p.id(), q.req.id, q.req.client_id,
                          duration_cast<nanoseconds>(q.dispatched - q.enqueued).count()});
  }
  a->from = caf::actor_cast<caf::strong_actor_ptr>(self);
  a->model_stats = st.model_stats;
  a->worker_stats = w.stats;
  return a;
}

/// Whether `w` is to stay awake for its next batch after the one it is given now: only while the
/// model lingers and no other worker of it on the same node runs a batch (batch_job::linger).
bool lingers_after(const batcher_state& st, const worker_slot& w) {
  if (st.model->linger_us == 0)
    return false;
  return std::none_of(st.workers.begin(), st.workers.end(), [&](const worker_slot& o) {
    return &o != &w && !o.batches.empty() && o.handle.node() == w.handle.node();
  });
}

void dispatch(batcher_ptr self, worker_slot& w, const std::vector<request_id>& ids, time_point now) {
  auto& st = self->state;
  auto id = st.next_batch_id++;
  in_flight_batch b;
  b.worker = w.handle.address();
  b.worker_name = w.name;
  if (st.model->execution_timeout_ms > 0)
    b.hang_deadline = now + std::chrono::milliseconds(st.model->execution_timeout_ms);
  batch_job job;
  job.batch_id = id;
  job.requests.reserve(ids.size());
  b.requests.reserve(ids.size());
  for (auto rid : ids) {
    auto it = st.waiting.find(rid);
    auto& q = it->second;
    job.requests.push_back(hand_over(st, q, now));
    b.rows += q.pending.rows;
    b.requests.push_back(std::move(q));
    st.waiting.erase(it);
  }
  b.remote = w.handle.node() != self->node();
  b.linger = job.linger = lingers_after(st, w);
  span_batch(b, job);
  b.answers = answers_for(self, w, b);
  if (b.answers->for_worker())
    job.answers = b.answers;
  w.batches.push_back(id);
  w.staging.on_dispatch(now, id, b.rows);
  w.breaker.on_dispatch(now);
  ++st.batches;
  self->send(w.handle, execute_atom::value, std::move(job));
  st.in_flight.emplace(id, std::move(b));
}

/// Answers the requests whose deadline passed, queued or in a running batch.
void expire_due(batcher_state& st, time_point now) {
  for (auto id : st.queue->expire(now)) {
    auto it = st.waiting.find(id);
    answer_error(it->second, deadline_error(st, it->second, now, false));
    st.waiting.erase(it);
  }
  for (auto& kv : st.in_flight)
    for (std::size_t i = 0; i < kv.second.requests.size(); ++i) {
      auto& q = kv.second.requests[i];
      if (from_ns(q.req.deadline_ns) <= now && kv.second.answers->claim(i)) {
        if (q.req.sampled)
          span_attempt(st, kv.second, q, now, attempt_end::deadline, {});
        answer_error(q, deadline_error(st, q, now, true));
      }
    }
}

/// Carries out what runtime/dispatch_plan says of a batch planned for worker `w`: answers the
/// requests it drops, puts back those that wait (at the head of the queue, in order), and
/// returns it.
dispatch_verdict sort_plan(batcher_state& st, const worker_slot& w, const std::vector<request_id>& ids,
                           std::optional<time_point> done, time_point now) {
  std::vector<planned_request> batch;
  for (auto rid : ids) {
    auto& q = st.waiting.at(rid);
    batch.push_back({rid, cancelled(q), from_ns(q.req.deadline_ns),
                     std::find(q.excluded.begin(), q.excluded.end(), w.handle.address())
                       != q.excluded.end()});
  }
  auto v = sort_planned(batch, done);
  for (auto rid : v.cancelled) { // its client is gone: nothing to run it for
    answer_cancelled(st, st.waiting.at(rid));
    st.waiting.erase(rid);
  }
  for (auto rid : v.doomed) {
    auto& q = st.waiting.at(rid);
    answer_error(q, doomed_error(st, q, now, *done));
    st.waiting.erase(rid);
  }
  for (auto it = v.back.rbegin(); it != v.back.rend(); ++it)
    st.queue->requeue(st.waiting.at(*it).pending);
  return v;
}

/// One round over the workers from `base` (idle ones, or with `prefetch` busy ones with room),
/// each offered a due batch. Returns whether another round may find more; `held_back` as
/// dispatch_verdict::held_back.
bool dispatch_round(batcher_ptr self, std::size_t base, bool prefetch, time_point now,
                    bool& held_back) {
  auto& st = self->state;
  auto n = st.workers.size();
  bool progress = false;
  for (std::size_t k = 0; k < n; ++k) {
    auto& w = st.workers[(base + k) % n];
    if (w.batches.empty() == prefetch || !w.has_room() || !w.breaker.allow(now))
      continue;
    auto plan = st.queue->pop_due(now, !w.wants_any(now, st.model->batching.stage_ahead));
    if (!plan)
      break;
    auto sorted = sort_plan(st, w, plan->ids, w.staging.finish_if_dispatched(now, plan->rows), now);
    if (!sorted.doomed.empty()) { // (each round drops one request at least: the loop ends)
      progress = true;
      continue;
    }
    held_back = held_back || sorted.held_back();
    if (!sorted.take.empty()) {
      dispatch(self, w, sorted.take, now);
      st.next_worker = (base + k + 1) % n;
      progress = prefetch; // idle workers get one batch each per pump
    }
  }
  return progress;
}

void init_state(batcher_ptr self, std::shared_ptr<const model_config> model,
                std::shared_ptr<model_directory> directory, std::shared_ptr<metrics> stats,
                std::shared_ptr<handle_cell<caf::actor>> supervisor) {
  auto& st = self->state;
  st.supervisor = std::move(supervisor);
  st.model = std::move(model);
  st.directory = std::move(directory);
  st.self_addr = self->address();
  if (st.directory)
    st.directory->set_batcher(st.model->name, caf::actor_cast<batcher_actor>(self));
  st.stats = std::move(stats);
  st.model_stats = st.stats ? st.stats->model(st.model->name) : nullptr;
  batching_options opts;
  opts.max_batch_size = st.model->max_batch_size;
  opts.max_queue_delay = std::chrono::microseconds(st.model->batching.max_queue_delay_us);
  opts.preferred_batch_sizes = st.model->batching.preferred_batch_sizes;
  opts.max_queue_size = st.model->batching.max_queue_size;
  st.queue = std::make_unique<batch_queue>(opts);
  init_scaling(self);
}

/// Why the model cannot take a request now (no worker ready or starting, or every worker's
/// breaker open), or nothing.
caf::error unavailable(const batcher_state& st, time_point now) {
  if (st.workers.empty() && st.starting.empty())
    return make_error(errc::not_ready,
                      "model '" + st.model->name + "' has no ready worker and none starting");
  if (!st.starting.empty() || st.workers.empty()
      || !std::all_of(st.workers.begin(), st.workers.end(), [&](const worker_slot& w) {
           return w.breaker.state(now) == breaker_state::open;
         }))
    return caf::none;
  auto soonest = st.workers.front().breaker.reopens_at();
  for (auto& w : st.workers)
    soonest = std::min(soonest, w.breaker.reopens_at());
  auto ms = duration_cast<std::chrono::milliseconds>(soonest - now).count();
  return make_error(errc::not_ready, "every worker of model '" + st.model->name
                                       + "' has an open circuit breaker; the first probe is "
                                         "allowed in " + std::to_string(ms) + " ms");
}

/// How a request sits in the batch queue.
pending_request pending_of(const model_config& model, const infer_request& req, time_point now) {
  pending_request p;
  p.id = req.id;
  p.shape_key = shape_key(model, req);
  p.rows = request_rows(model, req);
  p.enqueued = now;
  p.deadline = from_ns(req.deadline_ns);
  p.priority = req.priority > 0 ? req.priority : model.batching.default_priority_level;
  return p;
}

/// Queues a request (or refuses it: unavailable, queue full, too many rows) and pumps.
caf::result<infer_response> admit(batcher_ptr self, infer_request& req) {
  auto& st = self->state;
  auto now = self->clock().now(); // the actor clock: virtual time in tests
  cold_start(self); // (at zero instances: one starts for this request)
  if (auto err = unavailable(st, now))
    return err;
  auto p = pending_of(*st.model, req, now);
  auto pending = p;
  if (st.queue->size() >= st.model->batching.max_queue_size)
    purge_cancelled(st);
  switch (st.queue->push(std::move(p))) {
    case admission::queue_full:
      return make_error(errc::overloaded,
                        "model '" + st.model->name + "' is overloaded: its queue holds "
                          + std::to_string(st.queue->size()) + " requests (max_queue_size "
                          + std::to_string(st.model->batching.max_queue_size) + ")");
    case admission::too_many_rows:
      return make_error(errc::invalid_input, "request batch dimension exceeds max_batch_size "
                                               + std::to_string(st.model->max_batch_size));
    case admission::accepted:
      break;
  }
  if (st.model_stats)
    st.model_stats->queue_depth.store(static_cast<int64_t>(st.queue->size()), std::memory_order_relaxed);
  auto rp = self->make_response_promise<infer_response>();
  auto id = req.id;
  queued_request q;
  q.req = std::move(req);
  q.promise = rp;
  q.enqueued = now;
  q.dispatched = now;
  q.pending = std::move(pending);
  st.waiting.emplace(id, std::move(q));
  pump(self);
  return rp;
}

/// Sends a fault to the named worker (or a random one): the chaos tests' way in.
caf::result<std::string> inject_fault(batcher_ptr self, fault_spec& spec) {
  auto& st = self->state;
  if (st.workers.empty())
    return make_error(errc::not_ready, "model '" + st.model->name + "' has no ready worker");
  auto it = st.workers.begin();
  if (spec.worker.empty()) {
    it += static_cast<std::ptrdiff_t>(std::random_device{}() % st.workers.size());
  } else {
    it = std::find_if(st.workers.begin(), st.workers.end(),
                      [&](const worker_slot& w) { return w.name == spec.worker; });
    if (it == st.workers.end())
      return make_error(errc::invalid_input, "model '" + st.model->name
                                               + "' has no ready worker '" + spec.worker + "'");
  }
  spec.worker = it->name;
  self->send(it->handle, fault_atom::value, spec);
  return spec.worker;
}

batcher_actor::behavior_type batcher_fn(batcher_ptr self, std::shared_ptr<const model_config> model,
                                        std::shared_ptr<model_directory> directory,
                                        std::shared_ptr<metrics> stats,
                                        std::shared_ptr<handle_cell<caf::actor>> supervisor,
                                        bool local_workers) {
  self->state.scaling.local = local_workers;
  init_state(self, std::move(model), std::move(directory), std::move(stats),
             std::move(supervisor));
  self->set_down_handler([self](caf::down_msg& dm) { on_worker_down(self, dm); });
  return {
    [self](infer_atom, infer_request& req) { return admit(self, req); },
    [self](worker_starting_atom, std::string& name) { on_worker_starting(self, name); },
    [self](given_up_atom, std::string& name) { on_given_up(self, name); },
    [self](worker_ready_atom, caf::actor& handle, std::string& name, uint32_t capacity) {
      on_worker_ready(self, handle, name, capacity);
    },
    [self](batch_done_atom, batch_outputs& out) {
      finish_checked_batch(self, out);
      pump(self);
    },
    [self](batch_failed_atom, uint64_t batch_id, caf::error& err) {
      finish_batch(self, batch_id, nullptr, err);
      pump(self);
    },
    [self](drain_atom, caf::actor& worker) { return drain_worker(self, worker); },
    [self](reload_atom) { return start_reload(self); },
    [self](scale_atom) { scale_tick(self); },
    [self](scale_atom, uint32_t min, uint32_t max) { return set_instances(self, min, max); },
    [self](fault_atom, fault_spec& spec) { return inject_fault(self, spec); },
    [self](tick_atom) {
      self->state.tick_at.reset(); // pump schedules the next one if anything is pending
      pump(self);
    },
  };
}

/// actorserve_instances{state}: this node's instances as the batcher sees them.
void count_instances(const batcher_state& st) {
  if (!st.model_stats)
    return;
  auto leaving = std::count_if(st.workers.begin(), st.workers.end(),
                               [](const worker_slot& w) { return w.draining; });
  int64_t counts[] = {
    static_cast<int64_t>(st.starting.size()),
    static_cast<int64_t>(st.workers.size()) - leaving,
    leaving + static_cast<int64_t>(st.scaling.stopping.size()),
    static_cast<int64_t>(st.scaling.parked.size() + st.given_up.size() + st.held.size())};
  for (std::size_t k = 0; k < std::size(counts); ++k)
    st.model_stats->instances[k].store(counts[k], std::memory_order_relaxed);
}

} // namespace

void report_status(batcher_ptr self) {
  auto& st = self->state;
  model_status s;
  s.model = st.model->name;
  s.ready_workers = static_cast<uint32_t>(st.workers.size());
  s.starting_workers = static_cast<uint32_t>(st.starting.size());
  s.batches = st.batches;
  s.cold_start = can_cold_start(st);
  count_instances(st);
  if (st.directory && st.directory->set_status(std::move(s)))
    logging::info({"batcher", st.model->name}, "model is {}",
                  st.workers.empty() ? "NOT ready" : "ready");
}

void answer_error(queued_request& q, caf::error err) {
  q.promise.deliver(std::move(err));
}

bool cancelled(const queued_request& q) {
  return q.req.cancelled && q.req.cancelled->load(std::memory_order_relaxed);
}

void answer_cancelled(const batcher_state& st, queued_request& q) {
  answer_error(q, make_error(errc::cancelled, "request " + std::to_string(q.req.id) + " of model '"
                                                + st.model->name + "': the client closed its "
                                                  "connection before it ran"));
}

/// Schedules the next tick for the earliest deadline, hang deadline or breaker reopening and,
/// when `batch_triggers`, the batching delay (false when the idle workers could not take what is
/// due: a tick then would only spin until a busy worker is free, which wakes the batcher anyway).
void schedule_tick(batcher_ptr self, time_point now, bool batch_triggers) {
  auto& st = self->state;
  bool idle_worker = batch_triggers
                     && std::any_of(st.workers.begin(), st.workers.end(), [&](const worker_slot& w) {
                          return w.has_room() && w.wants_any(now, st.model->batching.stage_ahead);
                        });
  auto next = st.queue->next_event(idle_worker);
  auto consider = [&](time_point t) {
    if (!next || t < *next)
      next = t;
  };
  if (!st.queue->empty() && st.model->batching.stage_ahead) // see worker_slot::wants_any
    for (auto& w : st.workers)
      if (auto at = w.staging.stage_next_at(); at && *at > now && w.has_room())
        consider(*at);
  for (auto& kv : st.in_flight) {
    for (std::size_t i = 0; i < kv.second.requests.size(); ++i)
      if (!kv.second.answers->claimed(i))
        consider(from_ns(kv.second.requests[i].req.deadline_ns));
    if (kv.second.hang_deadline)
      consider(*kv.second.hang_deadline);
  }
  if (!st.queue->empty()) // an open breaker turning half-open may let queued work go
    for (auto& w : st.workers)
      if (w.batches.empty() && w.breaker.state(now) == breaker_state::open)
        consider(w.breaker.reopens_at());
  if (!next)
    return;
  if (st.tick_at && *st.tick_at <= *next)
    return; // an earlier (or equal) tick is already on its way
  st.tick_at = *next;
  auto delay = *next > now ? duration_cast<nanoseconds>(*next - now) : nanoseconds{0};
  self->delayed_send(self, delay, tick_atom::value);
}

/// Expires what is due, dispatches what can go, and schedules the next tick.
void pump(batcher_ptr self) {
  auto& st = self->state;
  auto now = self->clock().now(); // the actor clock: virtual time in tests
  expire_due(st, now);
  detect_hangs(self, now);
  bool held_back = false; // due requests went back because the idle worker had failed them
  // Round robin over the idle workers first, so that every worker gets work (and a broken one
  // shows), starting after the last one given a batch or, where workers of this node linger for
  // their next batch (model_config::linger_us), at the one that finished last: it is still awake
  // (so at a low load one of them takes every batch, as Triton's first free instance does).
  // Then a worker that holds several batches (a GPU worker staging the next batch while one
  // computes) gets more, but only full ones until its device is about to run out of work: a
  // partial batch waits and grows meanwhile instead of being locked into a small batch that runs
  // no sooner, and goes just in time to be staged before the device is idle.
  auto base = st.next_worker;
  for (bool prefetch : {false, true})
    while (dispatch_round(self, base, prefetch, now, held_back)) {
    }
  if (st.model_stats)
    st.model_stats->queue_depth.store(static_cast<int64_t>(st.queue->size()), std::memory_order_relaxed);
  schedule_tick(self, now, !held_back);
}

} // namespace batcher_impl

batcher_actor spawn_batcher(caf::actor_system& sys, std::shared_ptr<const model_config> model,
                            std::shared_ptr<model_directory> directory,
                            std::shared_ptr<metrics> stats,
                            std::shared_ptr<handle_cell<caf::actor>> workers_supervisor,
                            bool local_workers) {
  return sys.spawn(batcher_impl::batcher_fn, std::move(model), std::move(directory), std::move(stats),
                   std::move(workers_supervisor), local_workers);
}

} // namespace actorserve
