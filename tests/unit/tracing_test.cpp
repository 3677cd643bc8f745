// runtime/tracing (sampling, the bounded queue, the exporter thread, its counts) with a sink of
// the test's own, and net/request_span (a front's span). The process has one recorder: each case
// starts and ends its own session, and reads the counters as differences.
#include <catch2/catch.hpp>

#include <mutex>

#include "net/request_span.hpp"
#include "runtime/tracing.hpp"

using namespace actorserve;

namespace {

/// A sink that keeps what it is given, or fails every batch.
struct test_sink final : tracing::span_sink {
  static inline std::mutex mtx;
  static inline std::vector<tracing::span> got;
  static inline bool fail = false;
  bool send(const std::vector<tracing::span>& spans, std::string& why) override {
    if (fail) {
      why = "refused";
      return false;
    }
    std::lock_guard<std::mutex> guard{mtx};
    got.insert(got.end(), spans.begin(), spans.end());
    return true;
  }
};

tracing_config test_config() {
  tracing_config c;
  c.enabled = true;
  c.export_interval_ms = 3'600'000; // (exports happen when the test flushes)
  return c;
}

/// The recorder's counts when a case starts (they only grow).
struct baseline {
  uint64_t exported = tracing::stats().exported.load();
  uint64_t full = tracing::stats().dropped_queue_full.load();
  uint64_t failed = tracing::stats().dropped_export_failed.load();
  uint64_t failures = tracing::stats().export_failures.load();
};

std::unique_ptr<tracing::session> start(const tracing_config& c) {
  {
    std::lock_guard<std::mutex> guard{test_sink::mtx};
    test_sink::got.clear();
  }
  tracing::register_sink([](const tracing_config&) {
    return caf::expected<std::unique_ptr<tracing::span_sink>>(std::make_unique<test_sink>());
  });
  auto s = tracing::session::start(c);
  REQUIRE(s);
  REQUIRE(*s);
  return std::move(*s);
}

tracing::span named(std::string name) {
  tracing::span s;
  s.trace_id = tracing::new_trace_id();
  s.span_id = tracing::new_span_id();
  s.name = std::move(name);
  return s;
}

} // namespace

TEST_CASE("tracing: off, nothing is sampled or recorded, and a build without a sink refuses it",
          "[tracing]") {
  CHECK_FALSE(tracing::on());
  CHECK_FALSE(tracing::sample("4bf92f3577b34da6a3ce929d0e0e4736", true));
  CHECK(tracing::keep_anyway(true, std::chrono::seconds(9)) == nullptr);
  tracing::record(named("x"));
  CHECK(tracing::stats().queued.load() == 0);
  auto none = tracing::session::start(tracing_config{}); // (enabled false: nothing starts)
  REQUIRE(none);
  CHECK_FALSE(*none);
  auto refused = tracing::session::start(test_config());
  REQUIRE_FALSE(refused);
  CHECK(error_message(refused.error()).find("no OTLP exporter") != std::string::npos);
}

TEST_CASE("tracing: parent-based sampling follows the caller, the ratio decides new traces by "
          "their id",
          "[tracing]") {
  auto c = test_config();
  c.sample_ratio = 0.5;
  auto s = start(c);
  CHECK(tracing::sample("ffffffffffffffff0000000000000000", true));
  CHECK_FALSE(tracing::sample("00000000000000000000000000000001", false));
  // No caller: the trace id's low 64 bits against ratio * 2^64, so every node decides alike.
  CHECK(tracing::sample("ffffffffffffffff0000000000000001", std::nullopt));
  CHECK(tracing::sample("ffffffffffffffff7fffffffffffffff", std::nullopt));
  CHECK_FALSE(tracing::sample("00000000000000008000000000000000", std::nullopt));
  CHECK_FALSE(tracing::sample("0000000000000000ffffffffffffffff", std::nullopt));
  int kept = 0;
  for (int i = 0; i < 4000; ++i)
    kept += tracing::sample(tracing::new_trace_id(), std::nullopt);
  CHECK(kept > 1700);
  CHECK(kept < 2300);
}

TEST_CASE("tracing: without parent_based the ratio decides every trace", "[tracing]") {
  auto c = test_config();
  c.sample_ratio = 0;
  c.parent_based = false;
  auto s = start(c);
  CHECK_FALSE(tracing::sample("4bf92f3577b34da6a3ce929d0e0e4736", true));
  CHECK_FALSE(tracing::sample("4bf92f3577b34da6a3ce929d0e0e4736", std::nullopt));
}

TEST_CASE("tracing: errors and slow requests are kept when not sampled, as configured",
          "[tracing]") {
  auto c = test_config();
  c.sample_slower_than_ms = 250;
  auto s = start(c);
  CHECK(std::string(tracing::keep_anyway(true, std::chrono::milliseconds(1))) == "error");
  CHECK(std::string(tracing::keep_anyway(false, std::chrono::milliseconds(250))) == "slow");
  CHECK(tracing::keep_anyway(false, std::chrono::milliseconds(249)) == nullptr);
}

TEST_CASE("tracing: no errors kept and no latency bound when switched off", "[tracing]") {
  auto c = test_config();
  c.sample_errors = false;
  auto s = start(c);
  CHECK(tracing::keep_anyway(true, std::chrono::hours(1)) == nullptr);
}

TEST_CASE("tracing: a full queue drops and counts, the exporter sends in batches, flush waits",
          "[tracing]") {
  auto c = test_config();
  c.max_queue_spans = 5;
  c.max_export_batch = 2;
  baseline b;
  auto s = start(c);
  for (int i = 0; i < 8; ++i)
    tracing::record(named("span " + std::to_string(i)));
  // (a full batch wakes the exporter: spans may leave the queue meanwhile, so at least 3 drop
  // only if it has not run; what is certain is that nothing is lost uncounted)
  s->flush();
  auto& st = tracing::stats();
  CHECK(st.exported.load() - b.exported + st.dropped_queue_full.load() - b.full == 8);
  CHECK(st.exported.load() - b.exported >= 5);
  std::lock_guard<std::mutex> guard{test_sink::mtx};
  CHECK(test_sink::got.size() == st.exported.load() - b.exported);
  CHECK(test_sink::got.front().name == "span 0");
}

TEST_CASE("tracing: a sink that fails drops its batch, counted, and recording goes on",
          "[tracing]") {
  baseline b;
  auto s = start(test_config());
  test_sink::fail = true;
  for (int i = 0; i < 3; ++i)
    tracing::record(named("x"));
  s->flush();
  CHECK(tracing::stats().dropped_export_failed.load() - b.failed == 3);
  CHECK(tracing::stats().export_failures.load() - b.failures == 1);
  test_sink::fail = false;
  tracing::record(named("y"));
  s->flush();
  CHECK(tracing::stats().exported.load() - b.exported == 1);
}

TEST_CASE("tracing: stopping exports what is queued, and a second session cannot start meanwhile",
          "[tracing]") {
  auto s = start(test_config());
  auto again = tracing::session::start(test_config());
  CHECK_FALSE(again);
  tracing::record(named("last"));
  s.reset();
  CHECK_FALSE(tracing::on());
  std::lock_guard<std::mutex> guard{test_sink::mtx};
  REQUIRE(test_sink::got.size() == 1);
  CHECK(test_sink::got[0].name == "last");
}

TEST_CASE("tracing: a child span of a sampled request only", "[tracing]") {
  auto s = start(test_config());
  infer_request req;
  req.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  req.span_id = "00f067aa0ba902b7";
  auto t0 = std::chrono::steady_clock::now();
  CHECK(tracing::record_child(req, "queue m", t0, t0).empty()); // (not sampled)
  req.sampled = true;
  std::vector<tracing::attribute> attrs(1, tracing::attribute{"k", int64_t{7}});
  auto id = tracing::record_child(req, "queue m", t0, t0 + std::chrono::milliseconds(2),
                                  std::move(attrs));
  CHECK(id.size() == 16);
  auto chosen = tracing::make_child(req.trace_id, req.span_id, "infer m", t0, t0,
                                    "1111111111111111");
  CHECK(chosen.span_id == "1111111111111111");
  CHECK(chosen.parent_span_id == req.span_id);
  tracing::record(std::move(chosen));
  s->flush();
  std::lock_guard<std::mutex> guard{test_sink::mtx};
  REQUIRE(test_sink::got.size() == 2);
  auto& q = test_sink::got[0];
  CHECK(q.trace_id == req.trace_id);
  CHECK(q.parent_span_id == req.span_id);
  CHECK(q.span_id == id);
  CHECK(q.end_unix_ns - q.start_unix_ns == 2'000'000);
  CHECK(std::get<int64_t>(q.attributes.at(0).value) == 7);
}

TEST_CASE("request_span: the caller's trace and tracestate continue, sampling shows in the flags",
          "[tracing]") {
  auto c = test_config();
  c.sample_ratio = 0;
  auto s = start(c);
  auto now = std::chrono::steady_clock::now();
  request_span sampled;
  sampled.begin("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "a=1", now);
  CHECK(sampled.sampled());
  CHECK(sampled.tracestate() == "a=1");
  CHECK(sampled.context().flags == "01");
  infer_request req;
  sampled.stamp(req);
  CHECK(req.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(req.span_id == sampled.context().span_id);
  CHECK(req.sampled);

  request_span fresh; // no caller, ratio 0: not sampled, and the answer says so
  fresh.begin("", "a=1", now);
  CHECK_FALSE(fresh.sampled());
  CHECK(fresh.tracestate().empty()); // (a tracestate means nothing without its traceparent)
  CHECK(fresh.context().flags == "00");
  request_span::outcome ok;
  CHECK_FALSE(fresh.end(tracing::span_kind::server, "quiet", ok)); // (not to be recorded)
  request_span failed;
  failed.begin("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
               std::string(513, 'x'), now);
  CHECK_FALSE(failed.sampled());
  CHECK(failed.tracestate().empty()); // (over W3C's 512 characters: dropped)
  request_span::outcome bad;
  bad.failed = true;
  bad.status_error = true;
  bad.message = "boom";
  auto loud_span = failed.end(tracing::span_kind::server, "loud", bad);
  REQUIRE(loud_span);
  loud_span->set("http.response.status_code", int64_t{500});
  tracing::record(std::move(*loud_span));
  CHECK_FALSE(failed.end(tracing::span_kind::server, "loud", bad)); // (once only)
  auto kept = sampled.end(tracing::span_kind::server, "kept", ok);
  REQUIRE(kept);
  tracing::record(std::move(*kept));
  s->flush();
  std::lock_guard<std::mutex> guard{test_sink::mtx};
  REQUIRE(test_sink::got.size() == 2);
  auto& loud = test_sink::got[0];
  CHECK(loud.name == "loud");
  CHECK(loud.error);
  CHECK(loud.status_message == "boom");
  CHECK(loud.parent_span_id == "00f067aa0ba902b7");
  CHECK(std::get<std::string>(loud.attributes.at(0).value) == "error"); // actorserve.sampled_by
  CHECK(test_sink::got[1].name == "kept");
  CHECK(test_sink::got[1].span_id == sampled.context().span_id);
}
