#include <catch2/catch.hpp>

#include "net/trace_context.hpp"

using namespace actorserve;

TEST_CASE("a valid traceparent is continued with a new span of this server", "[trace]") {
  auto t = continue_or_start_trace("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  CHECK(t.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(t.parent_id == "00f067aa0ba902b7");
  CHECK(t.flags == "01");
  REQUIRE(t.span_id.size() == 16);
  CHECK(t.span_id != t.parent_id);
  CHECK(t.header() == "00-4bf92f3577b34da6a3ce929d0e0e4736-" + t.span_id + "-01");
}

TEST_CASE("a malformed traceparent starts a new trace", "[trace]") {
  for (auto bad : {"", "garbage", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                   "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                   "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                   "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                   "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"}) {
    INFO(bad);
    CHECK_FALSE(parse_traceparent(bad));
    auto t = continue_or_start_trace(bad);
    CHECK(t.trace_id.size() == 32);
    CHECK(t.trace_id != "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(t.parent_id.empty());
  }
  // A later version may append fields.
  CHECK(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what"));
}

#include <boost/json.hpp>

#include "runtime/log.hpp"

TEST_CASE("JSON log lines carry component, model, request and trace ids, escaped", "[trace]") {
  auto line = logging::json_line("2026-11-27T00:00:00.000Z", "warning",
                                 {"batcher", "mlp", 42, "4bf92f3577b34da6a3ce929d0e0e4736", "mlp/cpu/0"},
                                 "worker said \"no\"\nand left");
  auto doc = boost::json::parse(line).as_object();
  CHECK(doc["level"] == "warning");
  CHECK(doc["component"] == "batcher");
  CHECK(doc["model"] == "mlp");
  CHECK(doc["worker"] == "mlp/cpu/0");
  CHECK(doc["request_id"] == 42);
  CHECK(doc["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(doc["message"] == "worker said \"no\"\nand left");
  auto minimal = boost::json::parse(logging::json_line("t", "info", {"http"}, "x")).as_object();
  CHECK_FALSE(minimal.contains("model"));
  CHECK_FALSE(minimal.contains("request_id"));
}

TEST_CASE("text log lines escape control characters, so outside names cannot forge a line",
          "[trace]") {
  // A region or worker name from a client with a newline once started a line of its own.
  CHECK(logging::text_line({"http"}, "registered region 'a\n2026-12-03T00:00:00.000 critical "
                                     "main: shutting down'")
        == "http: registered region 'a\\n2026-12-03T00:00:00.000 critical main: shutting down'");
  CHECK(logging::text_line({"queue", "m\r"}, "field\tx\x1b[31m\x7f")
        == "queue m\\r: field\\tx\\x1b[31m\\x7f");
  CHECK(logging::text_line({"batcher", "mlp", 7, "abc"}, "plain")
        == "batcher mlp: plain (request 7, trace abc)");
}
