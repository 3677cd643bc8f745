// Event-queue ingress against a real Redis server (redis-server on a free loopback port, no
// persistence): entries answered on reply streams and acknowledged, bad entries answered with
// their problem, entries of failed nodes taken over, poison entries given up, draining, and
// Redis restarting under a running node.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/time.h>

#include <cstring>
#include <map>
#include <thread>

#include <boost/json.hpp>
#include <hiredis/hiredis.h>

#include "support.hpp"

using namespace actorserve::itest;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

/// A Redis command line for the test (hiredis, synchronous, 5 s timeout).
class redis {
public:
  explicit redis(uint16_t port) {
    timeval tv{5, 0};
    c_ = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c_ || c_->err) {
      if (c_)
        redisFree(c_);
      throw std::runtime_error("cannot connect to redis on port " + std::to_string(port));
    }
    redisSetTimeout(c_, tv);
  }
  ~redis() { redisFree(c_); }

  /// The reply to a command; integers and strings as text, arrays flattened with '|'.
  std::string operator()(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
      redisCommandArgv(c_, static_cast<int>(argv.size()), argv.data(), lens.data()));
    if (!r)
      throw std::runtime_error("redis connection failed");
    auto text = flatten(r);
    freeReplyObject(r);
    return text;
  }

  /// The entries of a stream: fields by name, in stream order.
  std::vector<std::map<std::string, std::string>> entries(const std::string& stream) {
    std::vector<const char*> argv{"XRANGE", stream.c_str(), "-", "+"};
    auto* r = static_cast<redisReply*>(redisCommandArgv(c_, 4, argv.data(), nullptr));
    std::vector<std::map<std::string, std::string>> out;
    if (r && r->type == REDIS_REPLY_ARRAY)
      for (size_t i = 0; i < r->elements; ++i) {
        auto* fields = r->element[i]->element[1];
        std::map<std::string, std::string> m;
        for (size_t k = 0; k + 1 < fields->elements; k += 2)
          m[std::string(fields->element[k]->str, fields->element[k]->len)] =
            std::string(fields->element[k + 1]->str, fields->element[k + 1]->len);
        m["_id"] = std::string(r->element[i]->element[0]->str, r->element[i]->element[0]->len);
        out.push_back(std::move(m));
      }
    if (r)
      freeReplyObject(r);
    return out;
  }

  long long length(const std::string& stream) { return std::stoll((*this)({"XLEN", stream})); }

  /// Entries pending in the group (read, not acknowledged).
  long long pending(const std::string& stream, const std::string& group = "actorserve") {
    auto text = (*this)({"XPENDING", stream, group});
    return std::stoll(text.substr(0, text.find('|')));
  }

private:
  static std::string flatten(const redisReply* r) {
    switch (r->type) {
      case REDIS_REPLY_INTEGER: return std::to_string(r->integer);
      case REDIS_REPLY_NIL: return "nil";
      case REDIS_REPLY_ARRAY: {
        std::string out;
        for (size_t i = 0; i < r->elements; ++i)
          out += (i ? "|" : "") + flatten(r->element[i]);
        return out;
      }
      default: return std::string(r->str, r->len);
    }
  }
  redisContext* c_ = nullptr;
};

/// redis-server on a free port, without persistence; `wait` until it answers PING.
struct redis_server {
  uint16_t port;
  std::unique_ptr<child_process> proc;

  explicit redis_server(uint16_t p = free_port()) : port(p) { start(); }

  void start() {
    proc = std::make_unique<child_process>(std::vector<std::string>{
      "redis-server", "--port", std::to_string(port), "--bind", "127.0.0.1", "--save", "",
      "--appendonly", "no"});
    REQUIRE(eventually([&] {
      try {
        return redis{port}({"PING"}) == "PONG";
      } catch (...) {
        return false;
      }
    }, 10s));
  }
};

/// One "scale" model (y = 2x + 1, FP32 [batch, 4]) and one queue on `redis_port`;
/// `queue_extra` and `model_extra` are spliced into their objects.
std::string queue_config(uint16_t redis_port, const std::string& queue_extra = "",
                         const std::string& model_extra = "") {
  return R"({"server": {"http": {"port": 0}, "queues": [{"stream": "jobs", "model": "scale",
      "redis": {"port": )" + std::to_string(redis_port) + R"(}, "claim_idle_ms": 3000)"
         + queue_extra + R"(}]},
    "models": [{"name": "scale", "backend": "scale", "max_batch_size": 8,
      "max_timeout_us": 1000000, "default_timeout_us": 1000000,
      "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
      "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]}],
      "parameters": {"factor": 2, "bias": 1})" + model_extra + "}]}";
}

/// The same with batches of one request that take `delay_us` each, `max_in_flight` entries
/// held at once, and 2 s timeouts (claim_idle_ms 4000).
std::string slow_config(uint16_t redis_port, int max_in_flight, int delay_us) {
  auto text = queue_config(redis_port, R"(, "max_in_flight": )" + std::to_string(max_in_flight));
  auto replace = [&](const std::string& from, const std::string& to) {
    text.replace(text.find(from), from.size(), to);
  };
  replace(R"("max_batch_size": 8)", R"("max_batch_size": 1)");
  replace(R"("bias": 1)", R"("bias": 1, "delay_us": )" + std::to_string(delay_us));
  replace(R"("max_timeout_us": 1000000, "default_timeout_us": 1000000)",
          R"("max_timeout_us": 2000000, "default_timeout_us": 2000000)");
  replace(R"("claim_idle_ms": 3000)", R"("claim_idle_ms": 4000)");
  return text;
}

std::string infer_json(const std::string& data = "[1,2,3,4]", const std::string& id = "r") {
  return R"({"id": ")" + id + R"(", "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
           "data": )" + data + "}]}";
}

/// Answers by the request entry they answer.
std::map<std::string, std::map<std::string, std::string>> answers(redis& r,
                                                                  const std::string& stream) {
  std::map<std::string, std::map<std::string, std::string>> out;
  for (auto& e : r.entries(stream))
    out[e.at("request")] = e;
  return out;
}

std::string error_in(const std::map<std::string, std::string>& answer) {
  INFO(answer.at("body"));
  return std::string(json::parse(answer.at("body")).as_object().at("error").as_string());
}

} // namespace

TEST_CASE("entries of a Redis stream are answered on reply streams and acknowledged, and bad "
          "entries are answered with what is wrong", "[integration][queue]") {
  redis_server rs;
  redis r{rs.port};
  // Added before any node runs: served once one starts.
  auto ok = r({"XADD", "jobs", "*", "body", infer_json("[1,2,3,4]", "first")});
  // Binary tensor data: the JSON part's length in header_length, the FP32 bytes after it.
  std::string header = R"({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
    "parameters": {"binary_data_size": 16}}], "outputs": [{"name": "y",
    "parameters": {"binary_data": true}}]})";
  float xs[4] = {0, 1, 2, 3};
  auto binary = r({"XADD", "jobs", "*", "body",
                   header + std::string(reinterpret_cast<const char*>(xs), sizeof(xs)),
                   "header_length", std::to_string(header.size())});
  auto mine = r({"XADD", "jobs", "*", "body", infer_json("[0,0,0,0]"), "reply_to", "mine",
                 "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"});
  auto bad_json = r({"XADD", "jobs", "*", "body", "{not json"});
  auto no_model = r({"XADD", "jobs", "*", "body", infer_json(), "model", "nope"});
  auto no_body = r({"XADD", "jobs", "*", "modle", "scale"});
  auto late = r({"XADD", "jobs", "*", "body", infer_json(), "deadline_ms", "1000"});
  auto bad_shape = r({"XADD", "jobs", "*", "body", infer_json("[1,2,3]")});

  server_process srv{write_temp_file(
    "queue.json", queue_config(rs.port, R"(, "reply_to_prefixes": ["jobs:replies", "mine"])"))};
  REQUIRE(eventually([&] { return r.length("jobs:replies") == 7 && r.length("mine") == 1; }, 20s));
  auto got = answers(r, "jobs:replies");
  INFO(srv.log());
  REQUIRE(got.count(ok));
  CHECK(got[ok]["status"] == "200");
  CHECK(got[ok]["model"] == "scale");
  auto doc = json::parse(got[ok]["body"]).as_object();
  CHECK(doc["id"] == "first");
  CHECK(json::serialize(doc["outputs"].as_array()[0].as_object()["data"]) == "[3,5,7,9]");
  CHECK(got[ok].count("traceparent")); // a trace started by the server

  REQUIRE(got.count(binary));
  CHECK(got[binary]["status"] == "200");
  REQUIRE(got[binary].count("header_length"));
  auto hl = std::stoul(got[binary]["header_length"]);
  auto& body = got[binary]["body"];
  REQUIRE(body.size() == hl + 16);
  float ys[4];
  std::memcpy(ys, body.data() + hl, 16);
  CHECK((ys[0] == 1 && ys[1] == 3 && ys[2] == 5 && ys[3] == 7));

  auto to_mine = answers(r, "mine");
  REQUIRE(to_mine.count(mine));
  CHECK(to_mine[mine]["status"] == "200");
  // The caller's trace continues in the answer.
  CHECK(to_mine[mine]["traceparent"].rfind("00-0af7651916cd43dd8448eb211c80319c-", 0) == 0);

  CHECK(got[bad_json]["status"] == "400");
  CHECK_THAT(error_in(got[bad_json]), Catch::Contains("not valid JSON"));
  CHECK(got[no_model]["status"] == "404");
  CHECK(error_in(got[no_model]) == "unknown model 'nope'");
  CHECK(got[no_body]["status"] == "400");
  CHECK_THAT(error_in(got[no_body]), Catch::Contains("unknown field \"modle\""));
  CHECK_THAT(error_in(got[no_body]), Catch::Contains("field \"body\" is missing"));
  CHECK(got[late]["status"] == "504");
  CHECK_THAT(error_in(got[late]), Catch::Contains("deadline_ms 1000 passed"));
  CHECK(got[bad_shape]["status"] == "400");
  CHECK_THAT(error_in(got[bad_shape]), Catch::Contains("'x'"));

  // Every entry acknowledged and deleted: the stream holds only open work.
  CHECK(r.pending("jobs") == 0);
  CHECK(r.length("jobs") == 0);

  // New entries are served as they come, and the metrics count them.
  auto later = r({"XADD", "jobs", "*", "body", infer_json("[2,2,2,2]")});
  REQUIRE(eventually([&] { return answers(r, "jobs:replies").count(later) == 1; }, 10s));
  CHECK(answers(r, "jobs:replies")[later]["status"] == "200");
  http_client c{srv.port()};
  auto metrics = c.get("/metrics").body;
  CHECK(series(metrics, R"(actorserve_queue_entries_read_total{queue="jobs"})") == 9);
  CHECK(series(metrics, R"(actorserve_queue_answers_total{queue="jobs",code="200"})") == 4);
  CHECK(series(metrics, R"(actorserve_queue_answers_total{queue="jobs",code="400"})") == 3);
  CHECK(series(metrics, R"(actorserve_queue_entries_in_flight{queue="jobs"})") == 0);
  CHECK(series(metrics, R"(actorserve_requests_total{model="scale",outcome="success"})") == 4);
  // And HTTP serves beside it.
  CHECK(c.post("/v2/models/scale/infer", infer_json()).status == 200);
}

TEST_CASE("an entry whose consumer stopped answering is taken over by another node, and one "
          "delivered max_deliveries times is answered with an error, not run again",
          "[integration][queue]") {
  redis_server rs;
  redis r{rs.port};
  REQUIRE(r({"XGROUP", "CREATE", "jobs", "actorserve", "0", "MKSTREAM"}) == "OK");
  auto orphan = r({"XADD", "jobs", "*", "body", infer_json("[1,1,1,1]")});
  auto poison = r({"XADD", "jobs", "*", "body", infer_json("[5,5,5,5]")});
  // A consumer that read both and died; the poison entry killed two more before it.
  r({"XREADGROUP", "GROUP", "actorserve", "dead", "COUNT", "2", "STREAMS", "jobs", ">"});
  r({"XCLAIM", "jobs", "actorserve", "dead", "0", poison, "RETRYCOUNT", "3"});
  REQUIRE(r.pending("jobs") == 2);

  server_process srv{write_temp_file(
    "claim.json", queue_config(rs.port, R"(, "max_deliveries": 3, "dead_letter_stream": "jobs:dead")"))};
  REQUIRE(eventually([&] { return r.length("jobs:replies") == 2; }, 20s));
  auto got = answers(r, "jobs:replies");
  INFO(srv.log());
  CHECK(got[orphan]["status"] == "200");
  CHECK(json::serialize(json::parse(got[orphan]["body"]).at("outputs").as_array()[0].at("data"))
        == "[3,3,3,3]");
  CHECK(got[poison]["status"] == "500");
  CHECK_THAT(error_in(got[poison]), Catch::Contains("was delivered 4 times without an answer "
                                                    "(max_deliveries 3)"));
  CHECK(r.pending("jobs") == 0);
  auto metrics = http_client{srv.port()}.get("/metrics").body;
  CHECK(series(metrics, R"(actorserve_queue_entries_claimed_total{queue="jobs"})") == 2);
  CHECK(series(metrics, R"(actorserve_queue_entries_given_up_total{queue="jobs"})") == 1);
  // The poison entry never reached the model: one request ran.
  CHECK(series(metrics, R"(actorserve_requests_total{model="scale",outcome="success"})") == 1);
  // It is kept, with why, on the dead-letter stream.
  auto dead = r.entries("jobs:dead");
  REQUIRE(dead.size() == 1);
  CHECK(dead[0]["entry"] == poison);
  CHECK(dead[0]["deliveries"] == "4");
  CHECK_THAT(dead[0]["reason"], Catch::Contains("(max_deliveries 3)"));
  CHECK(dead[0]["body"] == infer_json("[5,5,5,5]"));
  CHECK(dead[0]["reply_to"] == "jobs:replies");
}

TEST_CASE("queue entries wait for room in the body budget instead of pushing HTTP out of it",
          "[integration][queue][hardening]") {
  redis_server rs;
  redis r{rs.port};
  auto cfg = queue_config(rs.port);
  cfg.replace(cfg.find(R"("http": {"port": 0})"), 19,
              R"("http": {"port": 0, "max_body_bytes": 1024, "max_inflight_body_bytes": 1024})");
  const std::string timeouts = R"("max_timeout_us": 1000000, "default_timeout_us": 1000000)";
  cfg.replace(cfg.find(timeouts), timeouts.size(),
              R"("max_timeout_us": 5000000, "default_timeout_us": 5000000)"); // (waits 5 s at most)
  cfg.replace(cfg.find(R"("claim_idle_ms": 3000)"), 21, R"("claim_idle_ms": 8000)");
  server_process srv{write_temp_file("budget.json", cfg)};
  REQUIRE(srv.wait_ready());
  auto body_bytes = [&] {
    return series(http_client{srv.port()}.get("/metrics").body, "actorserve_http_request_body_bytes");
  };
  std::string id;
  {
    // An HTTP client holds 950 bytes of the 1024: an entry of ~100 bytes does not fit beside it.
    stalled_connection holder{srv.port(), "POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\n"
                                          "Content-Length: 1000\r\n\r\n" + std::string(950, ' ')};
    REQUIRE(eventually([&] { return body_bytes() == 950; }, 10s));
    id = r({"XADD", "jobs", "*", "body", infer_json("[1,2,3,4]")});
    REQUIRE(eventually([&] { return r.pending("jobs") == 1; }, 10s)); // read, and waiting
    std::this_thread::sleep_for(1s);
    CHECK(r.length("jobs:replies") == 0); // not run past the budget, not refused either
    CHECK(body_bytes() == 950);           // (HTTP's share untouched)
  }
  // The HTTP client gone, the entry fits: it runs.
  REQUIRE(eventually([&] { return r.length("jobs:replies") == 1; }, 10s));
  CHECK(answers(r, "jobs:replies")[id]["status"] == "200");
  CHECK(eventually([&] { return body_bytes() == 0; }, 5s));
}

TEST_CASE("a node whose model is not ready stops reading its stream until the model is back",
          "[integration][queue][hardening]") {
  redis_server rs;
  redis r{rs.port};
  server_process srv{write_temp_file("gate.json", queue_config(rs.port))};
  REQUIRE(srv.wait_ready());
  auto first = r({"XADD", "jobs", "*", "body", infer_json("[1,2,3,4]")});
  REQUIRE(eventually([&] { return r.length("jobs:replies") == 1; }, 10s));
  // The model goes (unloaded here; a model whose supervisors gave up is not ready either): the
  // node stops taking entries it could only fail, leaving them to other consumers.
  http_client c{srv.port()};
  REQUIRE(c.post("/v2/repository/models/scale/unload", "").status == 200);
  REQUIRE(eventually([&] {
    return occurrences(srv.log(), "queue 'jobs': model 'scale' is not ready: reading of stream "
                                  "'jobs' stops until it is") == 1;
  }, 10s));
  std::vector<std::string> waiting;
  for (int i = 0; i < 3; ++i)
    waiting.push_back(r({"XADD", "jobs", "*", "body", infer_json("[0,0,0,0]")}));
  std::this_thread::sleep_for(3s); // (three readiness checks: none of them reads)
  CHECK(r.length("jobs:replies") == 1);
  CHECK(r.pending("jobs") == 0); // not read: no consumer of the group holds them
  // Back: they are read and answered.
  REQUIRE(c.post("/v2/repository/models/scale/load", "").status == 200);
  REQUIRE(eventually([&] { return r.length("jobs:replies") == 4; }, 20s));
  auto got = answers(r, "jobs:replies");
  for (auto& id : waiting)
    CHECK(got[id]["status"] == "200");
  CHECK(got[first]["status"] == "200");
}

TEST_CASE("a node killed with entries in flight loses none: another node of the group "
          "answers them", "[integration][queue]") {
  redis_server rs;
  redis r{rs.port};
  // Each batch takes 300 ms and holds one request: the entries are still running when the
  // node dies.
  auto cfg = write_temp_file("kill.json", slow_config(rs.port, 4, 300'000));
  std::vector<std::string> ids;
  {
    server_process first{cfg};
    REQUIRE(first.wait_ready());
    for (int i = 0; i < 4; ++i)
      ids.push_back(r({"XADD", "jobs", "*", "body", infer_json("[1,2,3,4]")}));
    REQUIRE(eventually([&] { return r.pending("jobs") == 4; }, 10s));
    first.signal(SIGKILL);
    first.stop();
  }
  auto before = answers(r, "jobs:replies").size();
  CHECK(before < 4); // (some entries were still running)
  server_process second{cfg};
  REQUIRE(eventually([&] { return answers(r, "jobs:replies").size() == 4; }, 20s));
  INFO(second.log());
  auto got = answers(r, "jobs:replies");
  for (auto& id : ids) {
    REQUIRE(got.count(id));
    CHECK(got[id]["status"] == "200");
  }
  CHECK(r.pending("jobs") == 0);
}

TEST_CASE("SIGTERM drains a queue: entries read are answered before the node exits, the rest "
          "stay in the stream", "[integration][queue]") {
  redis_server rs;
  redis r{rs.port};
  server_process srv{write_temp_file("drain.json", slow_config(rs.port, 2, 100'000))};
  REQUIRE(srv.wait_ready());
  for (int i = 0; i < 8; ++i)
    r({"XADD", "jobs", "*", "body", infer_json()});
  REQUIRE(eventually([&] { return r.length("jobs:replies") >= 1; }, 10s));
  CHECK(srv.stop() == 0);
  INFO(srv.log());
  auto answered = r.length("jobs:replies");
  CHECK(answered >= 1);
  CHECK(answered < 8);
  CHECK(r.pending("jobs") == 0);                 // nothing read was left unanswered
  CHECK(r.length("jobs") == 8 - answered);       // the rest wait for the group
  for (auto& [id, a] : answers(r, "jobs:replies"))
    CHECK(a["status"] == "200");
}

TEST_CASE("a node keeps serving a queue when Redis restarts under it", "[integration][queue]") {
  redis_server rs;
  server_process srv{write_temp_file("restart.json", queue_config(rs.port))};
  REQUIRE(srv.wait_ready());
  {
    redis r{rs.port};
    auto id = r({"XADD", "jobs", "*", "body", infer_json()});
    REQUIRE(eventually([&] { return answers(r, "jobs:replies").count(id) == 1; }, 10s));
  }
  rs.proc->kill_now(); // (no persistence: the stream and group are gone with it)
  std::this_thread::sleep_for(300ms);
  rs.start();
  redis r{rs.port};
  auto id = r({"XADD", "jobs", "*", "body", infer_json("[0,1,0,1]")});
  REQUIRE(eventually([&] { return answers(r, "jobs:replies").count(id) == 1; }, 20s));
  INFO(srv.log());
  CHECK(answers(r, "jobs:replies")[id]["status"] == "200");
  CHECK(occurrences(srv.log(), "connected to redis") >= 1);
  http_client c{srv.port()};
  CHECK(series(c.get("/metrics").body, R"(actorserve_queue_redis_errors_total{queue="jobs"})") >= 1);
}

TEST_CASE("a node restarted under its consumer name first answers the entries it held",
          "[integration][queue]") {
  redis_server rs;
  redis r{rs.port};
  REQUIRE(r({"XGROUP", "CREATE", "jobs", "actorserve", "0", "MKSTREAM"}) == "OK");
  auto held = r({"XADD", "jobs", "*", "body", infer_json("[4,3,2,1]")});
  // Read by "node-a", which then stopped before answering.
  r({"XREADGROUP", "GROUP", "actorserve", "node-a", "COUNT", "1", "STREAMS", "jobs", ">"});
  REQUIRE(r.pending("jobs") == 1);
  server_process srv{write_temp_file(
    "history.json", queue_config(rs.port, R"(, "consumer": "node-a", "claim_idle_ms": 60000)"))};
  // With claim_idle_ms at a minute, only its own history can have brought the entry back.
  REQUIRE(eventually([&] { return answers(r, "jobs:replies").count(held) == 1; }, 15s));
  INFO(srv.log());
  auto got = answers(r, "jobs:replies");
  CHECK(got[held]["status"] == "200");
  CHECK(json::serialize(json::parse(got[held]["body"]).at("outputs").as_array()[0].at("data"))
        == "[9,7,5,3]");
  CHECK(r.pending("jobs") == 0);
  auto metrics = http_client{srv.port()}.get("/metrics").body;
  CHECK(series(metrics, R"(actorserve_queue_entries_claimed_total{queue="jobs"})") == 0);
}
