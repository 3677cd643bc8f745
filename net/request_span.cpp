#include "net/request_span.hpp"

namespace actorserve {

void request_span::begin(std::string_view traceparent, std::string_view tracestate,
                         clock_type::time_point received) {
  received_ = received;
  ended_ = false;
  ctx_ = continue_or_start_trace(traceparent);
  bool continued = !ctx_.parent_id.empty();
  state_.clear();
  if (continued && !tracestate.empty() && tracestate.size() <= 512)
    state_.assign(tracestate);
  if (!tracing::on()) {
    sampled_ = false;
    return;
  }
  sampled_ = tracing::sample(ctx_.trace_id,
                             continued ? std::optional<bool>(ctx_.sampled()) : std::nullopt);
  ctx_.flags = sampled_ ? "01" : "00";
}

void request_span::stamp(infer_request& req) const {
  req.trace_id = ctx_.trace_id;
  req.sampled = sampled_;
  if (sampled_)
    req.span_id = ctx_.span_id;
}

std::optional<tracing::span> request_span::end(tracing::span_kind kind, std::string_view name,
                                               const outcome& how) {
  if (ended_ || ctx_.trace_id.empty() || !tracing::on())
    return std::nullopt;
  ended_ = true;
  auto now = clock_type::now();
  const char* kept_by = sampled_ ? nullptr : tracing::keep_anyway(how.failed, now - received_);
  if (!sampled_ && !kept_by)
    return std::nullopt;
  std::optional<tracing::span> out{tracing::make_child(ctx_.trace_id, ctx_.parent_id,
                                                      std::string(name), received_, now,
                                                      ctx_.span_id)};
  auto& s = *out;
  s.kind = kind;
  s.error = how.status_error;
  if (how.failed)
    s.status_message = how.message;
  if (kept_by)
    s.set("actorserve.sampled_by", std::string(kept_by));
  if (auto* r = how.response) {
    s.set("actorserve.model_version", r->version);
    if (!r->worker.empty())
      s.set("actorserve.worker", r->worker);
    s.set("actorserve.queue_ns", r->queue_ns).set("actorserve.compute_ns", r->compute_ns);
    if (r->batch_requests > 0)
      s.set("actorserve.batch.requests", static_cast<int64_t>(r->batch_requests))
        .set("actorserve.batch.rows", static_cast<int64_t>(r->batch_rows));
  }
  return out;
}

void request_span::clear() {
  ctx_ = {};
  state_.clear();
  sampled_ = false;
  ended_ = false;
}

} // namespace actorserve
