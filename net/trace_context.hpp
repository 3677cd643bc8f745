// W3C Trace Context (traceparent) for requests: accept a caller's trace, or start one, and name
// this server's span so the response and the logs can be joined with the caller's tracing.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace actorserve {

struct trace_context {
  std::string trace_id;  // 32 lower-case hex digits, not all zero
  std::string parent_id; // the caller's span (16 hex), empty when this server started the trace
  std::string span_id;   // this server's span (16 hex)
  std::string flags = "01";

  /// The caller's sampled flag (bit 0 of the flags).
  bool sampled() const {
    return !flags.empty() && ((flags.back() <= '9' ? flags.back() - '0' : flags.back() - 'a') & 1);
  }

  /// The traceparent header value for what this server sends on: version 00, our span.
  std::string header() const;
};

/// Parses a traceparent header value; nullopt when it is malformed (the W3C rule is then to
/// start a new trace).
std::optional<trace_context> parse_traceparent(std::string_view value);

/// Continues the caller's trace when `header` is valid, else starts a new one; always gives this
/// server a fresh span id.
trace_context continue_or_start_trace(std::string_view header);

} // namespace actorserve
