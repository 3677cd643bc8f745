// The spans of sampled requests in the batcher (actors/batcher_state.hpp): a request's wait in
// the queue, each attempt (dispatch to its batch's end, with how it ended), and each batch that
// holds a sampled request (in the first such request's trace, linked to every one of them). A
// request that is not sampled costs one flag test here.
#include "actors/batcher_state.hpp"

#include "runtime/tracing.hpp"

namespace actorserve::batcher_impl {

namespace {

const char* name_of(attempt_end how) {
  switch (how) {
    case attempt_end::answered: return "answered";
    case attempt_end::failed: return "failed";
    case attempt_end::split: return "split";
    case attempt_end::deadline: return "deadline_exceeded";
  }
  return "?";
}

} // namespace

void span_dispatched(const batcher_state& st, queued_request& q, time_point now) {
  tracing::record_child(q.req, "queue " + st.model->name, q.enqueued, now,
                        {{"actorserve.model", st.model->name},
                         {"actorserve.attempt", static_cast<int64_t>(q.attempts)},
                         {"actorserve.priority", static_cast<int64_t>(q.req.priority)}});
  q.attempt_span = tracing::on() ? tracing::new_span_id() : std::string{};
}

void span_batch(in_flight_batch& b, batch_job& job) {
  for (auto& q : b.requests)
    if (q.req.sampled && !q.attempt_span.empty()) {
      b.trace_id = q.req.trace_id;
      b.parent_span_id = q.attempt_span;
      b.span_id = tracing::new_span_id();
      job.trace_id = b.trace_id;
      job.span_id = b.span_id;
      return;
    }
}

void span_attempt(const batcher_state& st, const in_flight_batch& b, const queued_request& q,
                  time_point now, attempt_end how, const caf::error& err) {
  if (q.attempt_span.empty() || !tracing::on())
    return;
  auto s = tracing::make_child(q.req.trace_id, q.req.span_id, "infer " + st.model->name,
                               q.dispatched, now, q.attempt_span);
  s.set("actorserve.attempt", static_cast<int64_t>(q.attempts))
    .set("actorserve.attempt.outcome", std::string(name_of(how)))
    .set("actorserve.worker", b.worker_name)
    .set("actorserve.batch.requests", static_cast<int64_t>(b.requests.size()));
  if (!b.span_id.empty())
    s.links.push_back({b.trace_id, b.span_id});
  if (how != attempt_end::answered) {
    s.error = true;
    s.status_message = how == attempt_end::deadline
                         ? "the request's deadline passed while its batch ran"
                         : error_message(err);
  }
  tracing::record(std::move(s));
}

void span_batch_end(const batcher_state& st, const in_flight_batch& b, time_point now,
                    const batch_outputs* out, const caf::error& err) {
  if (!tracing::on())
    return;
  auto s = tracing::make_child(b.trace_id, b.parent_span_id, "batch " + st.model->name,
                               b.requests.front().dispatched, now, b.span_id);
  s.set("actorserve.model", st.model->name)
    .set("actorserve.worker", b.worker_name)
    .set("actorserve.worker.remote", b.remote)
    .set("actorserve.batch.requests", static_cast<int64_t>(b.requests.size()))
    .set("actorserve.batch.rows", static_cast<int64_t>(b.rows));
  if (out)
    s.set("actorserve.compute_ns", out->compute_ns);
  for (auto& q : b.requests)
    if (!q.attempt_span.empty())
      s.links.push_back({q.req.trace_id, q.attempt_span});
  if (!out) {
    s.error = true;
    s.status_message = error_message(err);
  }
  tracing::record(std::move(s));
}

} // namespace actorserve::batcher_impl
