// Concurrent HTTP/HTTPS downloads on one thread of their own, through libcurl's multi interface:
// non-blocking I/O for every transfer at once, connections kept and reused per host, at most
// `max_connections` attempts at once in all and `max_per_host` per host (the rest wait their
// turn, and an attempt's timeout starts when it does), connect and total timeouts, a byte limit
// per body, redirects followed by hand (each hop checked against the allow-list), no proxy (the
// connect-time check must see the origin's address), retries with jittered backoff within the
// deadline, and cancellation when a transfer's deadline passes or its client leaves. Results
// come back through a callback on the fetcher's thread; the fetch stage turns them into actor
// messages.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/fetch_policy.hpp"

namespace actorserve {

struct fetch_settings {
  uint32_t max_connections = 64; // in all
  uint32_t max_per_host = 16;
  uint32_t connect_timeout_ms = 2000;
  uint32_t timeout_ms = 10'000;  // per attempt (also bounded by the request's deadline)
  uint64_t max_bytes = 20u << 20; // per body
  uint32_t max_redirects = 3;
  uint32_t retries = 2;          // attempts after the first, for retryable failures
  uint32_t retry_backoff_ms = 50;
  std::vector<std::string> allow; // fetch_allow_list entries
};

/// The trace a download belongs to (runtime/tracing.hpp): it is sent to the origin as W3C
/// traceparent naming `span_id`, the download's span, so that an origin that traces joins in.
struct fetch_trace {
  std::string trace_id;       // empty: none (no header)
  std::string parent_span_id; // the span the download's is a child of
  std::string span_id;
  bool sampled = false;

  /// The traceparent header's value (version 00).
  std::string traceparent() const {
    return "00-" + trace_id + "-" + span_id + (sampled ? "-01" : "-00");
  }
};

/// One finished download: its body, or why there is none.
struct fetch_result {
  uint64_t id = 0;
  errc code = errc::none;     // none: `body` holds the bytes, as a BYTES element (see below)
  std::string message;        // what went wrong, naming the URL
  std::vector<uint8_t> body;  // a 4-byte length, then the body (ready to be a BYTES element)
  long http_status = 0;
  uint32_t attempts = 0;
  int64_t duration_ns = 0;    // from the fetch call to its end, retries and redirects included
  std::string url;            // as asked
  fetch_trace trace;          // as given to fetch()
};

class http_fetcher {
public:
  using callback = std::function<void(fetch_result)>;

  /// Starts the fetcher's thread. `done` is called on that thread, once per fetch(). Throws
  /// std::runtime_error when libcurl cannot start or an allow entry is wrong.
  http_fetcher(fetch_settings settings, callback done);
  ~http_fetcher(); // cancels what is in flight (each reported as errc::cancelled), joins the thread

  http_fetcher(const http_fetcher&) = delete;
  http_fetcher& operator=(const http_fetcher&) = delete;

  /// Downloads `url` before the steady-clock `deadline_ns`; either flag (may be null) stops it
  /// when set: `client_left` (answered errc::cancelled) or `abandoned` (its request failed
  /// otherwise). `trace`: sent as traceparent (none without a trace id). Thread-safe.
  void fetch(uint64_t id, std::string url, int64_t deadline_ns,
             std::shared_ptr<std::atomic<bool>> client_left,
             std::shared_ptr<std::atomic<bool>> abandoned = nullptr, fetch_trace trace = {});

  /// Transfers started and not yet reported (for the in-flight gauge).
  int64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }

  struct impl;

private:
  std::unique_ptr<impl> impl_;
  std::atomic<int64_t> in_flight_{0};
};

} // namespace actorserve
