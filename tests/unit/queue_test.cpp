// The event-queue protocol without a Redis server: entries read into jobs (and every problem
// named), answers' fields, and the shapes of Redis's stream replies.
#include <catch2/catch.hpp>

#include "net/queue/job.hpp"
#include "net/queue/redis_client.hpp"
#include "runtime/error.hpp"

using namespace actorserve;

namespace {

queue_config queue(const std::string& model = "") {
  queue_config q;
  q.name = "jobs";
  q.stream = "jobs";
  q.reply_stream = "jobs:replies";
  q.model = model;
  q.max_entry_bytes = 1024;
  return q;
}

stream_entry entry(stream_fields fields) {
  stream_entry e;
  e.id = "1700000000000-0";
  e.fields = std::move(fields);
  return e;
}

redis_value str(std::string s) {
  redis_value v;
  v.kind = redis_value::string;
  v.str = std::move(s);
  return v;
}

redis_value arr(std::vector<redis_value> xs) {
  redis_value v;
  v.kind = redis_value::array;
  v.elements = std::move(xs);
  return v;
}

redis_value integer(int64_t n) {
  redis_value v;
  v.kind = redis_value::integer;
  v.number = n;
  return v;
}

} // namespace

TEST_CASE("an entry with tens of thousands of fields is read in one pass, its answer bounded",
          "[queue][hardening]") {
  std::vector<std::pair<std::string, std::string>> fields{{"body", "{}"}, {"model", "m"}};
  for (int i = 0; i < 50'000; ++i)
    fields.emplace_back("body", "x"); // given again and again
  auto job = read_job(entry(std::move(fields)), queue());
  REQUIRE(job.problem);
  auto text = error_message(job.problem);
  CHECK_THAT(text, Catch::StartsWith("entry 1700000000000-0 of stream 'jobs': field \"body\" is "
                                     "given twice; field \"body\" is given twice"));
  CHECK_THAT(text, Catch::EndsWith("; and 49992 more"));
  CHECK(text.size() < 400);
}

TEST_CASE("an entry's reply_to must start with one of the queue's reply_to_prefixes",
          "[queue][hardening]") {
  // Else any producer could make the node add to, and trim, any stream of the Redis server.
  auto q = queue("m");
  auto job = read_job(entry({{"body", "{}"}, {"reply_to", "billing:events"}}), q);
  REQUIRE(job.problem);
  CHECK(error_message(job.problem)
        == "entry 1700000000000-0 of stream 'jobs': field \"reply_to\" \"billing:events\" does "
           "not start with \"jobs:replies\" (the queue's reply_to_prefixes)");
  CHECK(job.reply_to == "jobs:replies"); // (the refusal is answered on the queue's own stream)
  q.reply_to_prefixes = {"jobs:replies", "client:"};
  CHECK(read_job(entry({{"body", "{}"}, {"reply_to", "client:7"}}), q).reply_to == "client:7");
  job = read_job(entry({{"body", "{}"}, {"reply_to", "clients"}}), q);
  REQUIRE(job.problem);
  CHECK_THAT(error_message(job.problem),
             Catch::Contains("does not start with \"jobs:replies\" or \"client:\""));
}

TEST_CASE("a queue entry's fields become a job: model, version, reply stream, binary header, "
          "deadline, trace", "[queue]") {
  auto job = read_job(entry({{"model", "m"}, {"version", "2"}, {"body", "{}"},
                             {"reply_to", "jobs:replies:mine"}, {"header_length", "2"},
                             {"deadline_ms", "1800000000000"}, {"traceparent", "00-x"}}),
                      queue());
  CHECK_FALSE(job.problem);
  CHECK(job.entry_id == "1700000000000-0");
  CHECK(job.model == "m");
  CHECK(job.version == "2");
  CHECK(job.body == "{}");
  CHECK(job.reply_to == "jobs:replies:mine");
  CHECK(job.header_length == std::optional<std::size_t>{2});
  CHECK(job.deadline_ms == std::optional<int64_t>{1800000000000});
  CHECK(job.traceparent == "00-x");

  // The queue's defaults: its model and its reply stream.
  job = read_job(entry({{"body", "{}"}}), queue("dflt"));
  CHECK_FALSE(job.problem);
  CHECK(job.model == "dflt");
  CHECK(job.reply_to == "jobs:replies");
  CHECK_FALSE(job.header_length);
}

TEST_CASE("a queue entry that asks for nothing runnable is a problem naming each field, and "
          "still has a reply stream", "[queue]") {
  auto job = read_job(entry({{"modle", "m"}, {"header_length", "-1"}, {"deadline_ms", "soon"},
                             {"reply_to", ""}}),
                      queue());
  REQUIRE(job.problem);
  CHECK(error_code(job.problem) == errc::invalid_input);
  auto msg = error_message(job.problem);
  CHECK_THAT(msg, Catch::Contains("entry 1700000000000-0 of stream 'jobs'"));
  CHECK_THAT(msg, Catch::Contains("unknown field \"modle\""));
  CHECK_THAT(msg, Catch::Contains("field \"header_length\": expected a non-negative integer, got \"-1\""));
  CHECK_THAT(msg, Catch::Contains("field \"deadline_ms\": expected Unix time in milliseconds"));
  CHECK_THAT(msg, Catch::Contains("field \"reply_to\" is empty"));
  CHECK_THAT(msg, Catch::Contains("field \"body\" is missing"));
  CHECK_THAT(msg, Catch::Contains("field \"model\" is missing (queue 'jobs' has no default model)"));
  CHECK(job.reply_to == "jobs:replies");

  job = read_job(entry({{"model", "m"}, {"body", "{}"}, {"body", "{}"}}), queue());
  REQUIRE(job.problem);
  CHECK_THAT(error_message(job.problem), Catch::Contains("field \"body\" is given twice"));

  job = read_job(entry({{"model", "m"}, {"body", "{}"}, {"reply_to", "jobs"}}), queue());
  REQUIRE(job.problem);
  CHECK_THAT(error_message(job.problem), Catch::Contains("names the request stream itself"));

  job = read_job(entry({{"model", "m"}, {"body", std::string(1025, ' ')}}), queue());
  REQUIRE(job.problem);
  CHECK(error_code(job.problem) == errc::payload_too_large);
  CHECK_THAT(error_message(job.problem), Catch::Contains("1025 bytes, more than the queue's "
                                                        "max_entry_bytes (1024)"));
}

TEST_CASE("an answer's fields: the request's entry ID, model, status, body, and the binary "
          "header length and trace where there are", "[queue]") {
  auto job = read_job(entry({{"model", "m"}, {"body", "{}"}}), queue());
  auto f = answer_fields(job, 200, "{\"a\":1}", std::nullopt);
  CHECK(f == stream_fields{{"request", "1700000000000-0"}, {"model", "m"}, {"status", "200"},
                           {"body", "{\"a\":1}"}});
  job.traceparent = "00-abc";
  f = answer_fields(job, 400, "xx", std::size_t{7});
  CHECK(f == stream_fields{{"request", "1700000000000-0"}, {"model", "m"}, {"status", "400"},
                           {"body", "xx"}, {"header_length", "7"}, {"traceparent", "00-abc"}});
}

TEST_CASE("Redis stream replies: XREADGROUP, XAUTOCLAIM with deleted entries, XPENDING",
          "[queue]") {
  auto e1 = arr({str("1-0"), arr({str("model"), str("m"), str("body"), str("{}")})});
  auto gone = arr({str("2-0"), redis_value{}}); // pending, deleted from the stream
  auto read = xreadgroup_entries(arr({arr({str("jobs"), arr({e1, gone})})}));
  REQUIRE(read);
  REQUIRE(read->size() == 2);
  CHECK((*read)[0].id == "1-0");
  CHECK((*read)[0].fields == stream_fields{{"model", "m"}, {"body", "{}"}});
  CHECK_FALSE((*read)[0].deleted);
  CHECK((*read)[1].deleted);
  // A BLOCK that timed out answers nil: no entries.
  auto none = xreadgroup_entries(redis_value{});
  REQUIRE(none);
  CHECK(none->empty());
  // Shapes it does not know are refused, not guessed at.
  CHECK_FALSE(xreadgroup_entries(str("OK")));
  CHECK_FALSE(xreadgroup_entries(arr({arr({str("jobs"), arr({arr({str("1-0"),
                                                                   arr({str("odd")})})})})})));

  auto claimed = xautoclaim_entries(arr({str("5-0"), arr({e1}), arr({str("3-0")})}));
  REQUIRE(claimed);
  CHECK(claimed->cursor == "5-0");
  REQUIRE(claimed->entries.size() == 2);
  CHECK(claimed->entries[0].id == "1-0");
  CHECK(claimed->entries[1].id == "3-0");
  CHECK(claimed->entries[1].deleted);
  CHECK_FALSE(xautoclaim_entries(arr({integer(1)})));

  auto pending = xpending_deliveries(
    arr({arr({str("1-0"), str("node-1"), integer(12), integer(3)}), arr({str("bad")})}));
  CHECK(pending == std::vector<std::pair<std::string, uint64_t>>{{"1-0", 3}});
}
