#include "actors/batcher.hpp"

#include <random>
#include <deque>
#include <set>
#include <unordered_map>

#include <caf/all.hpp>

#include "actors/worker.hpp"
#include "runtime/batch_assembly.hpp"
#include "runtime/batching.hpp"
#include "runtime/circuit_breaker.hpp"
#include "runtime/error.hpp"
#include "runtime/host.hpp"
#include "runtime/log.hpp"
#include "runtime/staging_estimate.hpp"
#include "runtime/retry_policy.hpp"

namespace actorserve {
namespace {

using std::chrono::duration_cast;
using std::chrono::nanoseconds;

time_point from_ns(int64_t ns) {
  return time_point{nanoseconds{ns}};
}

struct queued_request {
  infer_request req;
  caf::typed_response_promise<infer_response> promise;
  time_point enqueued;
  time_point dispatched;
  pending_request pending;                 // how it sits in the batch queue (for requeueing)
  uint32_t attempts = 0;                   // dispatches so far
  uint32_t splits = 0;                     // of those, failed batches it shared (not retries)
  std::vector<std::string> failures;       // what each failed attempt saw
  std::vector<caf::actor_addr> excluded;   // workers that failed it: never again
  bool model_threw = false;                // the backend threw on a batch of it alone
};

struct worker_slot {
  worker_actor handle;
  std::string name;
  uint32_t capacity = 1;        // batches it holds at once
  std::vector<uint64_t> batches; // the batches in flight on it
  circuit_breaker breaker;
  bool draining = false;         // leaving: no new batches; removed when `batches` is empty
  std::optional<caf::typed_response_promise<bool>> drained;
  staging_estimate staging;     // capacity > 1: when to stage its next batch
  worker_metrics* stats = nullptr; // its series in /metrics (null without metrics)

  bool has_room() const { return !draining && batches.size() < capacity; }
  /// Whether it takes any due batch now, not only a full one: it is idle, or it holds batches
  /// but its device is about to run out of work (the staging lead before their expected end).
  bool wants_any(time_point now, bool stage_ahead) const {
    if (batches.empty())
      return true;
    if (!stage_ahead)
      return false;
    auto at = staging.stage_next_at();
    return at && now >= *at;
  }
  bool holds(uint64_t batch) const {
    return std::find(batches.begin(), batches.end(), batch) != batches.end();
  }
};

struct in_flight_batch {
  caf::actor_addr worker;
  std::string worker_name;
  std::vector<queued_request> requests; // answered ones are marked in `answered`
  std::vector<bool> answered;
  uint32_t rows = 0;
  std::optional<time_point> hang_deadline; // dispatched + execution_timeout
};

/// A rolling reload in progress (reload_atom): its workers one at a time. (At namespace scope:
/// nested with member initializers, clang 14 finds it not default-constructible in the class.)
struct reload_run {
  std::deque<std::string> left; // still to reload, in turn
  std::string current;          // being reloaded: draining, stopping or starting
  bool started = false;         // `current` was started again: it comes back ready, or fails
  caf::typed_response_promise<bool> promise;
};

struct batcher_state {
  std::shared_ptr<const model_config> model;
  std::shared_ptr<model_directory> directory;
  std::unique_ptr<batch_queue> queue;
  std::unordered_map<request_id, queued_request> waiting;
  std::vector<worker_slot> workers;
  std::set<std::string> starting;
  std::set<std::string> given_up; // workers the supervisor will not restart
  std::unordered_map<uint64_t, in_flight_batch> in_flight;
  uint64_t next_batch_id = 1;
  uint64_t next_group = 1; // for the halves of failed batches (requeue_halves)
  std::size_t next_worker = 0; // round robin: where the search for an idle worker starts
  uint64_t batches = 0;
  std::optional<time_point> tick_at; // when the scheduled tick fires
  std::shared_ptr<metrics> stats;
  model_metrics* model_stats = nullptr; // this model's entry in `stats`, if any
  std::shared_ptr<handle_cell<caf::actor>> supervisor; // told about hung workers; may be null
  caf::actor_addr self_addr;   // for clearing the directory entry when it stops
  std::optional<reload_run> reload; // a rolling reload in progress
  std::set<std::string> held; // did not come back from a reload: kept down until the next one
  static inline const char* name = "batcher";

  // Every accepted request gets an answer, also when the batcher itself goes away (CAF
  // destroys the state while the actor terminates, before attached functors run).
  ~batcher_state() {
    if (!model)
      return;
    if (directory && self_addr)
      directory->clear_batcher(model->name, self_addr);
    auto err = make_error(errc::not_ready,
                          "the batcher of model '" + model->name + "' stopped before answering");
    for (auto& kv : waiting)
      kv.second.promise.deliver(err);
    for (auto& kv : in_flight)
      for (std::size_t i = 0; i < kv.second.requests.size(); ++i)
        if (!kv.second.answered[i])
          kv.second.requests[i].promise.deliver(err);
    if (reload)
      reload->promise.deliver(make_error(errc::not_ready, "the batcher of model '" + model->name
                                                            + "' stopped during its reload"));
  }
};

using batcher_ptr = batcher_actor::stateful_pointer<batcher_state>;

void report_status(batcher_ptr self) {
  auto& st = self->state;
  model_status s;
  s.model = st.model->name;
  s.ready_workers = static_cast<uint32_t>(st.workers.size());
  s.starting_workers = static_cast<uint32_t>(st.starting.size());
  s.batches = st.batches;
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

/// Schedules the next tick for the earliest deadline, hang deadline or breaker reopening and,
/// when `batch_triggers`, the batching delay (false when the idle workers could not take what is
/// due: a tick then would only spin until a busy worker is free, which wakes the batcher anyway).
void schedule_tick(batcher_ptr self, time_point now, bool batch_triggers = true) {
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
      if (!kv.second.answered[i])
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
  const bool may_retry = st.model->max_retries > 0;
  for (auto rid : ids) {
    auto it = st.waiting.find(rid);
    auto& q = it->second;
    q.dispatched = now;
    if (st.model_stats) {
      auto waited = duration_cast<nanoseconds>(now - q.enqueued).count();
      st.model_stats->queue_seconds.observe(static_cast<double>(waited) * 1e-9);
      st.model_stats->queue.add(waited);
    }
    ++q.attempts;
    b.rows += q.pending.rows;
    if (may_retry) {
      job.requests.push_back(q.req); // kept whole: a retry needs the inputs again
    } else {
      // The tensors go to the worker; the batcher keeps what it needs to answer.
      infer_request kept;
      kept.id = q.req.id;
      kept.client_id = q.req.client_id;
      kept.deadline_ns = q.req.deadline_ns;
      kept.trace_id = q.req.trace_id;
      job.requests.push_back(std::move(q.req));
      q.req = std::move(kept);
    }
    b.requests.push_back(std::move(q));
    st.waiting.erase(it);
  }
  b.answered.assign(b.requests.size(), false);
  w.batches.push_back(id);
  w.staging.on_dispatch(now, id, b.rows);
  w.breaker.on_dispatch(now);
  ++st.batches;
  self->send(w.handle, execute_atom::value, std::move(job));
  st.in_flight.emplace(id, std::move(b));
}

void finish_batch(batcher_ptr self, uint64_t batch_id, batch_outputs* outputs,
                  const caf::error& err);

/// A worker of another node left: its series say so (this node's own workers' state is their
/// supervisor's to say).
void mark_left(const worker_slot& w) {
  if (w.stats && !w.stats->own)
    w.stats->set_phase(worker_phase::stopped);
}

void reload_restart(batcher_ptr self, bool stop_first);

/// Removes the leaving workers that have no batch left, and tells whoever asked (a worker being
/// reloaded is stopped and started again).
void remove_drained(batcher_ptr self) {
  auto& st = self->state;
  bool reloaded = false;
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
    reloaded = reloaded || (st.reload && st.reload->current == it->name);
    it = st.workers.erase(it);
  }
  report_status(self);
  if (reloaded)
    reload_restart(self, true);
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
      if (!kv.second.answered[i] && from_ns(q.req.deadline_ns) <= now) {
        kv.second.answered[i] = true;
        answer_error(q, deadline_error(st, q, now, true));
      }
    }
}

/// What a popped batch plan leaves for worker `w`: the requests it takes; those it already
/// failed go back to the head of the queue, in order. Requests whose client is gone are
/// dropped, and those that the batch would not be done for before their deadline are answered
/// now: then the others all go back, to form a fuller batch with the requests behind them.
struct plan_outcome {
  std::vector<request_id> take;
  bool dropped = false;   // some were answered: the plan is void, try again
  bool held_back = false; // some went back because this worker had failed them
};

plan_outcome sort_plan(batcher_state& st, const worker_slot& w, const std::vector<request_id>& ids,
                       std::optional<time_point> done, time_point now) {
  plan_outcome out;
  std::vector<request_id> back;
  for (auto rid : ids) {
    auto& q = st.waiting.at(rid);
    if (cancelled(q)) { // its client is gone: nothing to run it for
      answer_cancelled(st, q);
      st.waiting.erase(rid);
      continue;
    }
    if (done && from_ns(q.req.deadline_ns) < *done) {
      answer_error(q, doomed_error(st, q, now, *done));
      st.waiting.erase(rid);
      out.dropped = true;
      continue;
    }
    bool failed_here = std::find(q.excluded.begin(), q.excluded.end(), w.handle.address())
                       != q.excluded.end();
    (failed_here ? back : out.take).push_back(rid);
  }
  if (out.dropped) {
    back.insert(back.begin(), out.take.begin(), out.take.end());
    out.take.clear();
  }
  for (auto it = back.rbegin(); it != back.rend(); ++it)
    st.queue->requeue(st.waiting.at(*it).pending);
  out.held_back = !out.dropped && !back.empty();
  return out;
}

/// One round over the workers from `base` (idle ones, or with `prefetch` busy ones with room),
/// each offered a due batch. Returns whether another round may find more; `held_back` as
/// plan_outcome's.
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
    if (sorted.dropped) { // (each round drops one request at least: the loop ends)
      progress = true;
      continue;
    }
    held_back = held_back || sorted.held_back;
    if (!sorted.take.empty()) {
      dispatch(self, w, sorted.take, now);
      st.next_worker = (base + k + 1) % n;
      progress = prefetch; // idle workers get one batch each per pump
    }
  }
  return progress;
}

/// Expires what is due, dispatches what can go, and schedules the next tick.
void pump(batcher_ptr self) {
  auto& st = self->state;
  auto now = self->clock().now(); // the actor clock: virtual time in tests
  expire_due(st, now);
  detect_hangs(self, now);
  bool held_back = false; // due requests went back because the idle worker had failed them
  // Round robin over the idle workers first, so that every worker gets work (and a broken one
  // shows). Then a worker that holds several batches (a GPU worker staging the next batch while
  // one computes) gets more, but only full ones until its device is about to run out of work: a
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

void record_batch(model_metrics& mm, const in_flight_batch& b, const batch_outputs& out) {
  mm.execution_count.fetch_add(1, std::memory_order_relaxed);
  mm.inference_count.fetch_add(b.rows, std::memory_order_relaxed);
  mm.batch_rows.observe(b.rows);
  mm.compute_seconds.observe(static_cast<double>(out.compute_ns) * 1e-9);
  for (std::size_t i = 0; i < b.requests.size(); ++i) { // Triton counts compute per request
    mm.compute_input.add(out.input_ns);
    mm.compute_infer.add(out.infer_ns);
    mm.compute_output.add(out.output_ns);
  }
  if (b.rows < mm.by_batch_size.size()) {
    auto& s = mm.by_batch_size[b.rows];
    s.compute_input.add(out.input_ns);
    s.compute_infer.add(out.infer_ns);
    s.compute_output.add(out.output_ns);
  }
  mm.last_inference_ms.store(static_cast<uint64_t>(unix_ms_now()), std::memory_order_relaxed);
}

/// After a failed batch: re-dispatch the request to another worker, or answer it with an error
/// listing every failure it saw, as runtime/retry_policy decides.
void retry_or_fail(batcher_ptr self, queued_request&& q, const in_flight_batch& b,
                   const caf::error& err, time_point now) {
  auto& st = self->state;
  q.failures.push_back(error_message(err));
  retry_facts facts;
  facts.failure = error_code(err);
  facts.attempts = q.attempts;
  facts.splits = q.splits;
  facts.max_retries = st.model->max_retries;
  facts.deadline_passed = from_ns(q.req.deadline_ns) <= now;
  facts.threw_alone_before = q.model_threw;
  facts.other_worker = std::any_of(st.workers.begin(), st.workers.end(), [&](const worker_slot& w) {
    auto a = w.handle.address();
    return !w.draining && a != b.worker
           && std::find(q.excluded.begin(), q.excluded.end(), a) == q.excluded.end();
  });
  auto decision = decide_retry(facts);
  logging::fields ctx{"batcher", st.model->name, q.req.id, q.req.trace_id, b.worker_name};
  if (decision.retry) {
    q.model_threw = decision.threw_alone;
    q.excluded.push_back(b.worker);
    logging::warn(ctx, "retrying (attempt {} of {}) after: {}", q.attempts + 1,
                  st.model->max_retries + 1, q.failures.back());
    if (st.model_stats)
      st.model_stats->retries.fetch_add(1, std::memory_order_relaxed);
    auto id = q.req.id;
    st.queue->requeue(q.pending);
    st.waiting.emplace(id, std::move(q));
    return;
  }
  logging::warn(ctx, "request failed: {}", q.failures.back());
  if (q.failures.size() == 1)
    return answer_error(q, err);
  answer_error(q, make_error(decision.code, failed_attempts_message(q.req.id, st.model->name,
                                                                     q.failures, decision.reason)));
}

/// The backend threw on a batch of several requests. One request's data may be the cause (a
/// poison request: a shape the model cannot take, values it rejects) and the others innocent, so
/// rather than failing them all, or retrying them together so that they fail together again, the
/// requests go back to the head of the queue in two halves, each of which only batches with
/// itself; a half that fails again is split again, down to the request that fails alone
/// (retry_or_fail). Splits are not retries: they use up none of retry.max_retries, and there are
/// at most log2(max_batch_size) of them per request. A worker that throws on everything
/// (broken) fails the halves too, and its breaker opens as before.
void requeue_halves(batcher_ptr self, in_flight_batch& b, const caf::error& err,
                    time_point now) {
  auto& st = self->state;
  std::vector<std::size_t> open;
  for (std::size_t i = 0; i < b.requests.size(); ++i)
    if (!b.answered[i])
      open.push_back(i);
  logging::warn({"batcher", st.model->name, 0, {}, b.worker_name},
                "a batch of {} requests failed ({}); retrying them in two halves to find the one "
                "it fails on",
                b.requests.size(), error_message(err));
  const uint64_t groups[2] = {st.next_group++, st.next_group++};
  const std::size_t half = (open.size() + 1) / 2;
  for (std::size_t k = open.size(); k-- > 0;) { // at the head in reverse: they keep their order
    auto& q = b.requests[open[k]];
    if (from_ns(q.req.deadline_ns) <= now) {
      retry_or_fail(self, std::move(q), b, err, now); // (answers: its deadline passed)
      continue;
    }
    q.pending.split_group = groups[k < half ? 0 : 1];
    ++q.splits;
    if (st.model_stats)
      st.model_stats->retries.fetch_add(1, std::memory_order_relaxed);
    auto id = q.req.id;
    st.queue->requeue(q.pending);
    st.waiting.emplace(id, std::move(q));
  }
}

/// Ends an in-flight batch: `outputs` answers its requests, or `err` fails them.
void finish_batch(batcher_ptr self, uint64_t batch_id, batch_outputs* outputs,
                  const caf::error& err) {
  auto& st = self->state;
  auto it = st.in_flight.find(batch_id);
  if (it == st.in_flight.end())
    return;
  auto b = std::move(it->second);
  st.in_flight.erase(it);
  auto now = self->clock().now();
  // The backend threw on a batch of several requests: perhaps because of one request's data, so
  // the requests are split (requeue_halves), and the failure is no verdict on the worker until a
  // request fails alone.
  const bool split = !outputs
                     && split_failed_batch(error_code(err), b.requests.size(), st.model->max_retries);
  bool done_draining = false;
  for (auto& w : st.workers)
    if (w.holds(batch_id)) {
      w.batches.erase(std::find(w.batches.begin(), w.batches.end(), batch_id));
      if (outputs) {
        w.staging.on_done(now, batch_id, nanoseconds{outputs->infer_ns},
                           nanoseconds{outputs->input_ns});
        if (w.stats) { // here rather than on the worker, which may be in another process
          w.stats->batches.fetch_add(1, std::memory_order_relaxed);
          w.stats->compute_seconds.observe(static_cast<double>(outputs->compute_ns) * 1e-9);
        }
      } else
        w.staging.on_done(now, batch_id);
      if (w.draining && w.batches.empty())
        done_draining = true;
      auto before = w.breaker.state(now);
      if (outputs)
        w.breaker.on_success(now);
      else if (split)
        w.breaker.on_inconclusive(now);
      else
        w.breaker.on_failure(now);
      auto after = w.breaker.state(now);
      if (before != after)
        logging::warn({"batcher", st.model->name, 0, {}, w.name}, "circuit breaker {} -> {}{}",
                      to_string(before), to_string(after),
                      after == breaker_state::open
                        ? " for " + std::to_string(w.breaker.current_timeout().count()) + " ms"
                        : std::string{});
      if (w.stats && before != after)
        w.stats->breaker_transitions[static_cast<std::size_t>(after)].fetch_add(1);
    }
  if (done_draining)
    remove_drained(self);
  if (outputs && st.model_stats)
    record_batch(*st.model_stats, b, *outputs);
  if (split)
    return requeue_halves(self, b, err, now);
  for (std::size_t i = 0; i < b.requests.size(); ++i) {
    if (b.answered[i])
      continue;
    auto& q = b.requests[i];
    if (!outputs) {
      retry_or_fail(self, std::move(q), b, err, now);
      continue;
    }
    infer_response r;
    r.id = q.req.id;
    r.model = st.model->name;
    r.version = st.model->version;
    r.client_id = std::move(q.req.client_id);
    r.outputs = std::move(outputs->per_request[i]);
    r.batch_rows = b.rows;
    r.batch_requests = static_cast<uint32_t>(b.requests.size());
    r.queue_ns = duration_cast<nanoseconds>(q.dispatched - q.enqueued).count();
    r.compute_ns = outputs->compute_ns;
    r.worker = b.worker_name;
    q.promise.deliver(std::move(r));
  }
}

/// Ends a batch a worker answered. A worker of another process or node is checked like a
/// client: what it sent must fit the batch before any of it is answered, else the batch fails as
/// the worker's fault (and is retried elsewhere).
void finish_checked_batch(batcher_ptr self, batch_outputs& out) {
  auto& st = self->state;
  auto it = st.in_flight.find(out.batch_id);
  auto err = it == st.in_flight.end()
               ? caf::error{}
               : check_batch_outputs(*st.model, it->second.requests.size(), out);
  if (err)
    logging::error({"batcher", st.model->name, 0, {}, it->second.worker_name}, "worker {}: {}",
                   it->second.worker_name, error_message(err));
  finish_batch(self, out.batch_id, err ? nullptr : &out, err);
}

/// Nothing will ever serve what is queued (no worker ready or coming): it is failed now rather
/// than at its deadline.
void fail_if_no_worker_left(batcher_ptr self, const std::string& why) {
  auto& st = self->state;
  if (!st.workers.empty() || !st.starting.empty())
    return;
  auto err = make_error(errc::not_ready, "model '" + st.model->name + "' " + why);
  for (auto& kv : st.waiting) {
    st.queue->remove(kv.first);
    kv.second.promise.deliver(err);
  }
  st.waiting.clear();
}

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

void reload_next(batcher_ptr self);

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

/// Queues a request (or refuses it: unavailable, queue full, too many rows) and pumps.
caf::result<infer_response> admit(batcher_ptr self, infer_request& req) {
  auto& st = self->state;
  auto now = self->clock().now(); // the actor clock: virtual time in tests
  if (auto err = unavailable(st, now))
    return err;
  pending_request p;
  p.id = req.id;
  p.shape_key = shape_key(*st.model, req);
  p.rows = request_rows(*st.model, req);
  p.enqueued = now;
  p.deadline = from_ns(req.deadline_ns);
  p.priority = req.priority > 0 ? req.priority : st.model->batching.default_priority_level;
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

void on_worker_starting(batcher_ptr self, std::string& name) {
  auto& st = self->state;
  // The worker being reloaded, started again, is down again: it did not come back.
  if (st.reload && st.reload->current == name && st.reload->started)
    return reload_failed(self, name, "it failed to start");
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
  if (st.reload && st.reload->current == name)
    reload_end(self, make_error(errc::worker_failed, "worker " + name
                                                       + " was given up by its supervisor while "
                                                         "it was being reloaded"));
  fail_if_no_worker_left(self, "lost its last worker (" + name + ")");
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
  st.workers.push_back(std::move(slot));
  logging::info({"batcher", st.model->name, 0, {}, name}, "worker {} is ready ({} ready)", name,
                st.workers.size());
  report_status(self);
  pump(self);
  if (st.reload && st.reload->current == name) // (back: the next one)
    reload_next(self);
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
                                        std::shared_ptr<handle_cell<caf::actor>> supervisor) {
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
    [self](fault_atom, fault_spec& spec) { return inject_fault(self, spec); },
    [self](tick_atom) {
      self->state.tick_at.reset(); // pump schedules the next one if anything is pending
      pump(self);
    },
  };
}

} // namespace

batcher_actor spawn_batcher(caf::actor_system& sys, std::shared_ptr<const model_config> model,
                            std::shared_ptr<model_directory> directory,
                            std::shared_ptr<metrics> stats,
                            std::shared_ptr<handle_cell<caf::actor>> workers_supervisor) {
  return sys.spawn(batcher_fn, std::move(model), std::move(directory), std::move(stats),
                   std::move(workers_supervisor));
}

} // namespace actorserve
