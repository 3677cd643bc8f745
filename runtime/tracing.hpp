// runtime/tracing.hpp — OpenTelemetry spans of requests, and the process's one span recorder.
//
// Any thread records a finished span with `tracing::record`; it goes into a bounded queue that an
// exporter thread of its own empties in batches into a sink (net/otlp: OTLP over HTTP/protobuf or
// gRPC). A full queue, or a sink that fails, drops spans and counts them: recording never waits on
// the collector. With tracing off (server.tracing absent or disabled), `on()` is false and nothing
// is recorded. Which requests are recorded is decided once, where the request arrives
// (`sample`): parent-based with a ratio for new traces; errors and slow requests are kept anyway
// (`keep_anyway`), with their front's span.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <caf/expected.hpp>

#include "runtime/config.hpp"
#include "runtime/messages.hpp"

namespace actorserve::tracing {

enum class span_kind : uint8_t { internal = 1, server = 2, client = 3, producer = 4, consumer = 5 };

using attribute_value = std::variant<std::string, int64_t, double, bool>;

struct attribute {
  const char* key; // a literal: semantic conventions' names and actorserve's own
  attribute_value value;
};

/// A link to a span of (perhaps) another trace: a batch span links to its requests' spans.
struct span_link {
  std::string trace_id; // 32 hex digits
  std::string span_id;  // 16 hex digits
};

struct span {
  std::string trace_id;       // 32 lower-case hex digits
  std::string span_id;        // 16 lower-case hex digits
  std::string parent_span_id; // 16 hex digits; empty: the trace's root
  std::string name;
  span_kind kind = span_kind::internal;
  int64_t start_unix_ns = 0;
  int64_t end_unix_ns = 0;
  std::vector<attribute> attributes;
  std::vector<span_link> links;
  bool error = false;         // status ERROR (else UNSET)
  std::string status_message; // why, when error

  span() { attributes.reserve(12); } // (one allocation for a span's usual attributes)

  span& set(const char* key, attribute_value value);
  span& set(const char* key, const char* value); // (a string: not the variant's bool)
};

/// Where the exporter thread delivers batches of spans (net/otlp registers one).
class span_sink {
public:
  virtual ~span_sink() = default;
  /// Delivers `spans` (blocking, bounded by the sink's own timeout); on failure says why.
  virtual bool send(const std::vector<span>& spans, std::string& why) = 0;
};

using sink_factory =
  std::function<caf::expected<std::unique_ptr<span_sink>>(const tracing_config&)>;

/// Registers the sink the build has (from a static initializer, as fronts register); without one
/// a deployment with tracing on is refused.
void register_sink(sink_factory make);
bool sink_available();

/// What the recorder did since the process started (Prometheus series).
struct counters {
  std::atomic<uint64_t> exported{0};          // spans the collector took
  std::atomic<uint64_t> dropped_queue_full{0}; // recorded while the queue was full
  std::atomic<uint64_t> dropped_export_failed{0}; // in a batch the collector did not take
  std::atomic<uint64_t> export_failures{0};   // batches not delivered
  std::atomic<uint64_t> queued{0};            // spans waiting now
};
const counters& stats();

/// Whether this process records spans.
bool on();

/// The head decision for a request whose trace is `trace_id`: a caller's decision (`parent`:
/// its traceparent's sampled flag) is followed when tracing.parent_based; otherwise (or without
/// a caller) the trace is kept with probability sample_ratio, decided by the trace id itself, so
/// every node of a trace decides alike. False when tracing is off.
bool sample(std::string_view trace_id, std::optional<bool> parent);

/// Whether a request not sampled is recorded anyway: it failed (tracing.sample_errors) or took
/// at least tracing.sample_slower_than_ms. Its answer is known; returns the reason ("error",
/// "slow") or nullptr.
const char* keep_anyway(bool failed, std::chrono::nanoseconds took);

/// Queues a finished span for export (dropped and counted when the queue is full).
void record(span&& s);

/// A span of trace `trace_id`, a child of span `parent_span_id` (empty: a root), from `start`
/// to `end` (steady clock), to be filled and recorded. `id`: the span's id when it was chosen
/// before (others' links, or a traceparent sent on, name it); empty: a fresh one.
span make_child(std::string trace_id, std::string parent_span_id, std::string name,
                std::chrono::steady_clock::time_point start,
                std::chrono::steady_clock::time_point end, std::string id = {});

/// Records a span of `req`'s trace, a child of the request's span, from `start` to `end`
/// (steady clock), and returns its id; nothing ("") unless the request is sampled.
std::string record_child(const infer_request& req, std::string name,
                         std::chrono::steady_clock::time_point start,
                         std::chrono::steady_clock::time_point end,
                         std::vector<attribute> attributes = {});

/// Fresh random ids: a span's (16 hex digits), a trace's (32), never all zero.
std::string new_span_id();
std::string new_trace_id();

/// A steady-clock time as nanoseconds since the Unix epoch (what OTLP takes).
int64_t unix_ns(std::chrono::steady_clock::time_point t);
inline int64_t unix_ns_of_steady(int64_t steady_ns) {
  return unix_ns(std::chrono::steady_clock::time_point(std::chrono::nanoseconds(steady_ns)));
}

/// Tracing for the life of the process's serving: sets up sampling, makes the sink and starts
/// the exporter thread; its destruction stops recording, exports what is queued (bounded by
/// export_timeout_ms) and joins the thread. At most one at a time.
class session {
public:
  /// nullptr (and nothing started) when `cfg.enabled` is false; an error when no sink is built
  /// or the sink refuses its configuration (an endpoint it cannot use).
  static caf::expected<std::unique_ptr<session>> start(const tracing_config& cfg);
  ~session();
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  /// Exports what is queued now and waits for it (tests, and before the process exits).
  void flush();

private:
  session() = default;
};

} // namespace actorserve::tracing
