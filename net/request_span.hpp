// net/request_span.hpp — a request's span at the front that took it (HTTP, gRPC, a Redis
// stream): its W3C trace context (the caller's continued, or a new trace), whether its stages
// record spans (runtime/tracing's head decision), and its end, which records the span itself.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "net/trace_context.hpp"
#include "runtime/messages.hpp"
#include "runtime/tracing.hpp"

namespace actorserve {

class request_span {
public:
  using clock_type = std::chrono::steady_clock;

  /// Continues the caller's trace when `traceparent` is valid (and then keeps its `tracestate`,
  /// when W3C's 512-character bound holds), else starts one; gives this server a fresh span id
  /// and decides whether the request is sampled. `received`: the span's start.
  void begin(std::string_view traceparent, std::string_view tracestate,
             clock_type::time_point received);

  /// This server's span, as answered in traceparent (its flags: the sampling decision while
  /// tracing is on).
  const trace_context& context() const { return ctx_; }
  const std::string& tracestate() const { return state_; }
  bool sampled() const { return sampled_; }

  /// Makes `req` part of this trace (its trace id, for logs); when sampled, its stages' spans
  /// become children of this span.
  void stamp(infer_request& req) const;

  /// How the request ended, for its span.
  struct outcome {
    bool failed = false;        // the client got an error
    bool status_error = false;  // the span's status is ERROR (a server-side fault)
    std::string message;        // why, when failed
    const infer_response* response = nullptr; // its answer, when it has one
  };

  /// Ends the span now. When it is to be recorded (the request was sampled, or tracing keeps
  /// its outcome anyway: an error, a slow request), returns it with what every front records;
  /// the front adds its own attributes and records it (tracing::record). Once per request.
  std::optional<tracing::span> end(tracing::span_kind kind, std::string_view name,
                                   const outcome& how);

  /// Forgets the request (the connection's next one begins afresh).
  void clear();

private:
  trace_context ctx_; // (its parent_id: the caller's span, when it sent one)
  std::string state_;
  bool sampled_ = false;
  bool ended_ = false;
  clock_type::time_point received_;
};

} // namespace actorserve
