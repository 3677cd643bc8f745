// Finished and failed batches: answers, retries, splits and breakers (actors/batcher_state.hpp).
#include "actors/batcher_state.hpp"

#include "runtime/batch_assembly.hpp"
#include "runtime/host.hpp"
#include "runtime/log.hpp"
#include "runtime/retry_policy.hpp"

namespace actorserve::batcher_impl {

namespace {

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
    if (b.answers->claim(i)) // (its worker failed it: no answer of the worker's can come)
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

/// What the end of batch `batch_id` tells its worker's breaker and staging estimate; true when
/// the worker was leaving and this was its last batch.
bool settle_worker(const batcher_state& st, worker_slot& w, uint64_t batch_id,
                   const batch_outputs* outputs, bool split, time_point now) {
  w.batches.erase(std::find(w.batches.begin(), w.batches.end(), batch_id));
  if (outputs) {
    w.staging.on_done(now, batch_id, nanoseconds{outputs->infer_ns}, nanoseconds{outputs->input_ns});
    // (here rather than on the worker, which may be in another process, unless it answered)
    if (w.stats && !outputs->answered_by_worker)
      record_worker_batch(*w.stats, *outputs);
  } else {
    w.staging.on_done(now, batch_id);
  }
  auto before = w.breaker.state(now);
  if (outputs)
    w.breaker.on_success(now);
  else if (split) // (no verdict on the worker until a request fails alone)
    w.breaker.on_inconclusive(now);
  else
    w.breaker.on_failure(now);
  auto after = w.breaker.state(now);
  if (before != after) {
    logging::warn({"batcher", st.model->name, 0, {}, w.name}, "circuit breaker {} -> {}{}",
                  to_string(before), to_string(after),
                  after == breaker_state::open
                    ? " for " + std::to_string(w.breaker.current_timeout().count()) + " ms"
                    : std::string{});
    if (w.stats)
      w.stats->breaker_transitions[static_cast<std::size_t>(after)].fetch_add(1);
  }
  return w.draining && w.batches.empty();
}

/// Answers request `i` of a batch that ran with its share of the outputs.
void answer_request(in_flight_batch& b, std::size_t i, batch_outputs& outputs) {
  auto& q = b.requests[i];
  q.promise.deliver(b.answers->response(
    q.req.id, std::move(q.req.client_id),
    duration_cast<nanoseconds>(q.dispatched - q.enqueued).count(),
    std::move(outputs.per_request[i]), outputs.compute_ns));
}

} // namespace

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
  // the requests are split (requeue_halves).
  const bool split = !outputs
                     && split_failed_batch(error_code(err), b.requests.size(), st.model->max_retries);
  bool done_draining = false;
  uint32_t capacity = 1; // (its worker's batch slots: a batch is that share of the worker busy)
  for (std::size_t j = 0; j < st.workers.size(); ++j)
    if (auto& w = st.workers[j]; w.holds(batch_id)) {
      // (it lingers for the next batch: worker.cpp; a worker of another node is not preferred:
      // there the network costs more than a wake-up, and its nodes keep taking work in turn)
      if (outputs && b.linger && !b.remote)
        st.next_worker = j;
      capacity = w.capacity;
      done_draining = settle_worker(st, w, batch_id, outputs, split, now) || done_draining;
    }
  if (done_draining)
    remove_drained(self);
  if (outputs && st.model_stats && !outputs->answered_by_worker) // (else counted by it)
    record_batch(*st.model_stats, b.rows, b.requests.size(), *outputs);
  if (!b.requests.empty())
    note_batch(st, duration_cast<nanoseconds>(now - b.requests.front().dispatched), capacity,
               outputs != nullptr);
  if (!b.span_id.empty()) {
    span_batch_end(st, b, now, outputs, err);
    auto how = outputs ? attempt_end::answered : split ? attempt_end::split : attempt_end::failed;
    for (std::size_t i = 0; i < b.requests.size(); ++i)
      if (!b.answers->claimed(i) && b.requests[i].req.sampled)
        span_attempt(st, b, b.requests[i], now, how, err);
  }
  if (split)
    return requeue_halves(self, b, err, now);
  for (std::size_t i = 0; i < b.requests.size(); ++i) {
    if (!b.answers->claim(i)) // answered: by its worker, or at its deadline
      continue;
    if (outputs)
      answer_request(b, i, *outputs);
    else
      retry_or_fail(self, std::move(b.requests[i]), b, err, now);
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

} // namespace actorserve::batcher_impl
