#include "runtime/tracing.hpp"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "runtime/error.hpp"
#include "runtime/log.hpp"

namespace actorserve::tracing {

namespace {

std::string random_hex(std::size_t digits) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string out(digits, '0');
  for (std::size_t i = 0; i < digits; i += 16)
    for (auto j = i, x = rng(); j < std::min(digits, i + 16); ++j, x >>= 4)
      out[j] = hex[x & 0xf];
  if (out.find_first_not_of('0') == std::string::npos)
    out.back() = '1';
  return out;
}

/// The process's recorder: the queue `record` fills and the exporter thread empties.
struct recorder {
  std::atomic<bool> enabled{false};
  tracing_config cfg;    // set before `enabled`, fixed while it is
  uint64_t threshold = 0; // sample_ratio as a bound on a trace id's low 64 bits
  bool sample_all = false;
  std::mutex mtx;
  std::condition_variable wake;     // the exporter: spans to send, a flush, or stop
  std::condition_variable flushed;  // flush(): the exporter caught up
  std::vector<span> queue;
  uint64_t flush_asked = 0, flush_done = 0;
  bool stopping = false;
  std::unique_ptr<span_sink> sink;
  std::thread exporter;
  counters stats;
  sink_factory make_sink;
  // Unix time minus steady time, in ns: set at start and again by each export round (so that
  // the wall clock's adjustments reach spans, while a span's duration is exactly steady time's).
  std::atomic<int64_t> unix_offset{0};

  void measure_offset() {
    auto steady = std::chrono::steady_clock::now().time_since_epoch();
    auto unix = std::chrono::system_clock::now().time_since_epoch();
    unix_offset.store(std::chrono::duration_cast<std::chrono::nanoseconds>(unix).count()
                        - std::chrono::duration_cast<std::chrono::nanoseconds>(steady).count(),
                      std::memory_order_relaxed);
  }
};

recorder& the() {
  static auto* r = new recorder; // (never destroyed: threads may record while the process exits)
  return *r;
}

uint64_t low_bits(std::string_view trace_id) {
  uint64_t x = 0;
  for (char c : trace_id.substr(trace_id.size() >= 16 ? trace_id.size() - 16 : 0))
    x = (x << 4) | static_cast<uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
  return x;
}

/// Sends `batch` in pieces of max_export_batch; counts what was taken and what was lost. While
/// the process stops, a failed piece drops the rest: a dead collector does not hold up the exit.
void deliver(recorder& r, std::vector<span>& batch, bool stopping) {
  for (std::size_t at = 0; at < batch.size(); at += r.cfg.max_export_batch) {
    auto end = std::min(batch.size(), at + std::size_t{r.cfg.max_export_batch});
    std::vector<span> part(std::make_move_iterator(batch.begin() + at),
                           std::make_move_iterator(batch.begin() + end));
    std::string why;
    if (r.sink->send(part, why)) {
      r.stats.exported.fetch_add(part.size(), std::memory_order_relaxed);
      continue;
    }
    auto failures = r.stats.export_failures.fetch_add(1, std::memory_order_relaxed);
    auto lost = part.size();
    if (stopping) { // (the process is stopping: one failed call, and the rest is not tried)
      lost = batch.size() - at;
      at = batch.size();
    }
    r.stats.dropped_export_failed.fetch_add(lost, std::memory_order_relaxed);
    if ((failures & (failures + 1)) == 0) // (the 1st, 2nd, 4th, 8th, ... failure: no log flood)
      logging::warn({"tracing"}, "{} spans not exported to {} ({} failed exports so far): {}",
                    lost, r.cfg.endpoint, failures + 1, why);
  }
  batch.clear();
}

void export_loop(recorder& r) {
  std::unique_lock<std::mutex> lock{r.mtx};
  for (;;) {
    r.wake.wait_for(lock, std::chrono::milliseconds(r.cfg.export_interval_ms), [&] {
      return r.stopping || r.flush_asked != r.flush_done
             || r.queue.size() >= r.cfg.max_export_batch;
    });
    r.measure_offset();
    auto asked = r.flush_asked;
    std::vector<span> batch;
    batch.swap(r.queue);
    r.stats.queued.store(0, std::memory_order_relaxed);
    bool stop = r.stopping;
    lock.unlock();
    if (!batch.empty())
      deliver(r, batch, stop);
    lock.lock();
    r.flush_done = asked;
    r.flushed.notify_all();
    if (stop && r.queue.empty())
      return;
  }
}

} // namespace

span& span::set(const char* key, attribute_value value) {
  attributes.push_back({key, std::move(value)});
  return *this;
}

span& span::set(const char* key, const char* value) {
  return set(key, attribute_value(std::string(value)));
}

void register_sink(sink_factory make) {
  the().make_sink = std::move(make);
}

bool sink_available() {
  return static_cast<bool>(the().make_sink);
}

const counters& stats() {
  return the().stats;
}

bool on() {
  return the().enabled.load(std::memory_order_relaxed);
}

bool sample(std::string_view trace_id, std::optional<bool> parent) {
  auto& r = the();
  if (!r.enabled.load(std::memory_order_relaxed))
    return false;
  if (parent && r.cfg.parent_based)
    return *parent;
  return r.sample_all || low_bits(trace_id) < r.threshold;
}

const char* keep_anyway(bool failed, std::chrono::nanoseconds took) {
  auto& r = the();
  if (!r.enabled.load(std::memory_order_relaxed))
    return nullptr;
  if (failed && r.cfg.sample_errors)
    return "error";
  if (r.cfg.sample_slower_than_ms > 0
      && took >= std::chrono::milliseconds(r.cfg.sample_slower_than_ms))
    return "slow";
  return nullptr;
}

void record(span&& s) {
  auto& r = the();
  if (!r.enabled.load(std::memory_order_relaxed))
    return;
  std::unique_lock<std::mutex> lock{r.mtx};
  if (r.queue.size() >= r.cfg.max_queue_spans) {
    lock.unlock();
    r.stats.dropped_queue_full.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  r.queue.push_back(std::move(s));
  auto n = r.queue.size();
  r.stats.queued.store(n, std::memory_order_relaxed);
  lock.unlock();
  if (n == r.cfg.max_export_batch)
    r.wake.notify_one();
}

span make_child(std::string trace_id, std::string parent_span_id, std::string name,
                std::chrono::steady_clock::time_point start,
                std::chrono::steady_clock::time_point end, std::string id) {
  span s;
  s.trace_id = std::move(trace_id);
  s.span_id = id.empty() ? new_span_id() : std::move(id);
  s.parent_span_id = std::move(parent_span_id);
  s.name = std::move(name);
  s.start_unix_ns = unix_ns(start);
  s.end_unix_ns = unix_ns(end);
  return s;
}

std::string record_child(const infer_request& req, std::string name,
                         std::chrono::steady_clock::time_point start,
                         std::chrono::steady_clock::time_point end,
                         std::vector<attribute> attributes) {
  if (!req.sampled || req.span_id.empty() || !on())
    return {};
  auto s = make_child(req.trace_id, req.span_id, std::move(name), start, end);
  s.attributes = std::move(attributes);
  auto out = s.span_id;
  record(std::move(s));
  return out;
}

std::string new_span_id() {
  return random_hex(16);
}

std::string new_trace_id() {
  return random_hex(32);
}

int64_t unix_ns(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count()
         + the().unix_offset.load(std::memory_order_relaxed);
}

caf::expected<std::unique_ptr<session>> session::start(const tracing_config& cfg) {
  if (!cfg.enabled)
    return std::unique_ptr<session>{};
  auto& r = the();
  if (!r.make_sink)
    return make_error(errc::invalid_config,
                      "server.tracing is set but this build has no OTLP exporter (built without "
                      "protobuf, libprotobuf-dev)");
  if (r.enabled.load())
    return make_error(errc::internal, "tracing is already on in this process");
  auto sink = r.make_sink(cfg);
  if (!sink)
    return std::move(sink.error());
  r.cfg = cfg;
  r.measure_offset();
  r.sample_all = cfg.sample_ratio >= 1.0;
  r.threshold = r.sample_all // (2^64 itself is no uint64_t: the ratio 1 is sample_all)
                  ? 0
                  : static_cast<uint64_t>(cfg.sample_ratio * 18446744073709551616.0);
  r.sink = std::move(*sink);
  r.stopping = false;
  r.queue.reserve(std::min<std::size_t>(cfg.max_queue_spans, 4096));
  r.exporter = std::thread([&r] { export_loop(r); });
  r.enabled.store(true);
  logging::info({"tracing"}, "exporting spans over OTLP ({}) to {}, sampling {} of new traces{}",
                cfg.protocol, cfg.endpoint, cfg.sample_ratio,
                cfg.parent_based ? " and following callers' decisions" : "");
  return std::unique_ptr<session>(new session);
}

void session::flush() {
  auto& r = the();
  std::unique_lock<std::mutex> lock{r.mtx};
  auto ticket = ++r.flush_asked;
  r.wake.notify_one();
  r.flushed.wait(lock, [&] { return r.flush_done >= ticket || r.stopping; });
}

session::~session() {
  auto& r = the();
  r.enabled.store(false);
  {
    std::lock_guard<std::mutex> guard{r.mtx};
    r.stopping = true;
  }
  r.wake.notify_one();
  if (r.exporter.joinable())
    r.exporter.join();
  r.sink.reset();
  std::lock_guard<std::mutex> guard{r.mtx};
  r.queue.clear();
  r.flush_asked = r.flush_done = 0;
}

} // namespace actorserve::tracing
