// actors/batcher_state.hpp — inside the batcher (actors/batcher.hpp): its state and the
// functions its files share. batcher.cpp admits and dispatches, batcher_workers.cpp follows its
// workers, batcher_results.cpp answers finished and failed batches, batcher_reload.cpp rolls
// reloads. Not for use outside the batcher.
#pragma once

#include <deque>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>

#include "actors/batch_answers.hpp"
#include "actors/batcher.hpp"
#include "actors/worker.hpp"
#include "runtime/autoscale_policy.hpp"
#include "runtime/batching.hpp"
#include "runtime/circuit_breaker.hpp"
#include "runtime/error.hpp"
#include "runtime/rolling_reload.hpp"
#include "runtime/staging_estimate.hpp"

namespace actorserve::batcher_impl {

using std::chrono::duration_cast;
using std::chrono::nanoseconds;

inline time_point from_ns(int64_t ns) {
  return time_point{nanoseconds{ns}};
}

/// How long a request to the model's workers supervisor (stop or start a worker) may take.
inline std::chrono::milliseconds supervisor_wait(const model_config& m) {
  return std::chrono::milliseconds(m.restart.shutdown_ms) * 2 + std::chrono::seconds(5);
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
  std::string attempt_span;                // sampled: the span id of its current attempt
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
  bool parking = false;          // draining to be stopped: the model is scaled down

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
  std::vector<queued_request> requests;
  // Who answers each request (claimed once answered: by the batcher here, or by the worker that
  // ran the batch where it is in this process and the batch ran).
  std::shared_ptr<batch_answers> answers;
  uint32_t rows = 0;
  std::optional<time_point> hang_deadline; // dispatched + execution_timeout
  // Its span, when one of its requests is sampled (batcher_spans.cpp): in the trace of the first
  // of those, a child of that request's attempt span.
  std::string trace_id, span_id, parent_span_id;
  bool remote = false; // its worker's actor is on another CAF node: a cluster's worker node (an
                       // isolated worker with shared memory is reached through a local relay)
  bool linger = false; // its worker stays awake for the next batch (batch_job::linger)
};

/// The model's instances on this node as scaling sees them (models[].autoscaling, and the
/// count set at run time): which are stopped on purpose, what the autoscaler decides on.
struct scaling_state {
  bool local = true;                 // the instances run here (not on a cluster front)
  std::vector<std::string> names;    // every instance here, in start order (instance_slots)
  std::set<std::string> parked;      // stopped on purpose: scaled down, or not started yet
  std::set<std::string> stopping;    // drained, being stopped by their supervisor
  std::optional<autoscale_policy> policy; // none: autoscaling off (a count set at run time only)
  int64_t desired = -1;              // the count wanted; -1: none set (all instances run)
  std::deque<std::pair<time_point, double>> waits; // queue waits (ms) of dispatched requests
  double batch_ms = 0;               // batch durations, smoothed (predicted misses)
  double busy_ns = 0;                // instance-time busy, summed as batches end
  double busy_ns_seen = 0;           // ... as of the last decision
  std::optional<time_point> last_tick;
};

/// A rolling reload in progress (reload_atom): its steps (runtime/rolling_reload), and the
/// load's answer.
struct reload_run {
  rolling_reload steps;
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
  scaling_state scaling;
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
        if (kv.second.answers->claim(i)) // (else its worker has answered it)
          kv.second.requests[i].promise.deliver(err);
    if (reload)
      reload->promise.deliver(make_error(errc::not_ready, "the batcher of model '" + model->name
                                                            + "' stopped during its reload"));
  }
};

using batcher_ptr = batcher_actor::stateful_pointer<batcher_state>;

// --- batcher.cpp: admission and dispatch

/// Tells the model directory how many workers are ready and starting (its readiness).
void report_status(batcher_ptr self);

void answer_error(queued_request& q, caf::error err);

/// Whether the request's client went away (its connection closed while it waited).
bool cancelled(const queued_request& q);

void answer_cancelled(const batcher_state& st, queued_request& q);

/// Schedules the next tick for the earliest deadline, hang deadline or breaker reopening and,
/// when `batch_triggers`, the batching delay (false when the idle workers could not take what is
/// due: a tick then would only spin until a busy worker is free, which wakes the batcher anyway).
void schedule_tick(batcher_ptr self, time_point now, bool batch_triggers = true);

/// Expires what is due, dispatches what can go, and schedules the next tick.
void pump(batcher_ptr self);

// --- batcher_spans.cpp: the spans of sampled requests (runtime/tracing.hpp)

/// A request leaves the queue for a worker: its queue span (enqueued to now) is recorded and
/// its attempt gets a span id.
void span_dispatched(const batcher_state& st, queued_request& q, time_point now);

/// A batch goes to a worker: when one of its requests is sampled, the batch gets a span, whose
/// ids `job` carries to the worker (its compute span is that span's child).
void span_batch(in_flight_batch& b, batch_job& job);

/// How an attempt of a request ended, for its span.
enum class attempt_end { answered, failed, split, deadline };

/// An attempt of a sampled request ended: its span (dispatch to now), linked to its batch's.
void span_attempt(const batcher_state& st, const in_flight_batch& b, const queued_request& q,
                  time_point now, attempt_end how, const caf::error& err);

/// A batch ended: its span, linked to each sampled request's attempt span.
void span_batch_end(const batcher_state& st, const in_flight_batch& b, time_point now,
                    const batch_outputs* out, const caf::error& err);

// --- batcher_workers.cpp: the workers' comings and goings

/// Removes the leaving workers that have no batch left, and tells whoever asked (a worker being
/// reloaded is stopped and started again).
void remove_drained(batcher_ptr self);

/// A batch that outlived execution_timeout marks its worker hung: the worker takes no more
/// work, the batch's requests are retried elsewhere, and the supervisor replaces the worker.
void detect_hangs(batcher_ptr self, time_point now);

/// A monitored worker is down: it stopped, crashed, or its node left; its batches fail over.
void on_worker_down(batcher_ptr self, const caf::down_msg& dm);

/// The supervisor is (re)starting a worker: requests wait for it rather than fail.
void on_worker_starting(batcher_ptr self, std::string& name);

/// The supervisor gave a worker up: it will not come back.
void on_given_up(batcher_ptr self, std::string& name);

/// A worker loaded and warmed up its model and takes batches (`capacity` at once).
void on_worker_ready(batcher_ptr self, caf::actor& handle, std::string& name, uint32_t capacity);

/// A worker leaves: it takes no new batches; the answer comes once its batches are done.
caf::result<bool> drain_worker(batcher_ptr self, const caf::actor& worker);

// --- batcher_results.cpp: finished and failed batches

/// Ends an in-flight batch: `outputs` answers its requests, or `err` fails them.
void finish_batch(batcher_ptr self, uint64_t batch_id, batch_outputs* outputs,
                  const caf::error& err);

/// Ends a batch a worker answered. A worker of another process or node is checked like a
/// client: what it sent must fit the batch before any of it is answered, else the batch fails as
/// the worker's fault (and is retried elsewhere).
void finish_checked_batch(batcher_ptr self, batch_outputs& out);

/// Nothing will ever serve what is queued (no worker ready or coming): it is failed now rather
/// than at its deadline.
void fail_if_no_worker_left(batcher_ptr self, const std::string& why);

// --- batcher_scaling.cpp: instances added and removed with the load

/// Sets up scaling from the model's config: the instances not started with it are parked, and
/// with autoscaling the first decision is scheduled.
void init_scaling(batcher_ptr self);

/// Every autoscaling.interval_ms: reads the figures, decides, and starts or drains instances.
void scale_tick(batcher_ptr self);

/// The count set at run time (the management endpoint): with autoscaling its bounds, without it
/// the count itself (min == max). Answers the instances now wanted.
caf::result<uint32_t> set_instances(batcher_ptr self, uint32_t min, uint32_t max);

/// Whether the model has no instance ready or starting (the last may be leaving) and
/// autoscaling would start one for a request: the model counts as ready meanwhile.
bool can_cold_start(const batcher_state& st);

/// A request arrives and no instance is ready or starting: with autoscaling down to zero, one
/// starts now (the request waits for it, bounded by its deadline).
void cold_start(batcher_ptr self);

/// A drained instance that was leaving because the model scaled down: stopped by its
/// supervisor and parked.
void park(batcher_ptr self, const std::string& name);

/// What scaling needs from each dispatch and each finished batch.
void note_wait(batcher_state& st, time_point now, nanoseconds waited);
void note_batch(batcher_state& st, nanoseconds took, uint32_t capacity, bool succeeded);

// --- batcher_reload.cpp: rolling reloads

/// Where worker `name` stands when its turn to be reloaded comes.
rolling_reload::standing standing_of(const batcher_state& st, const std::string& name);

/// Carries out a step of the reload in progress: drains, stops and starts workers through their
/// supervisor, and answers the load when it is over.
void carry_out(batcher_ptr self, rolling_reload::step step);

/// Starts a rolling reload of this node's workers (those held down first: they add room).
caf::result<bool> start_reload(batcher_ptr self);

} // namespace actorserve::batcher_impl
