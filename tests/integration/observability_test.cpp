// What the real process shows about itself: metrics, Triton's statistics, a real Prometheus
// scraping it, trace context and JSON logs.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <boost/json.hpp>

#include "scale_model.hpp"
#include "support.hpp"

using namespace actorserve::itest;

TEST_CASE("metrics and statistics move by exactly the requests, batches and failures served",
          "[integration][metrics]") {
  server_process srv{write_temp_file(
    "metrics.json", scale_config(R"(, "max_batch_size": 1, "batching": {"max_queue_delay_us": 0})"))};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  for (int i = 0; i < 5; ++i)
    REQUIRE(c.post("/v2/models/scale/infer", infer_body()).status == 200);
  for (int i = 0; i < 2; ++i)
    REQUIRE(c.post("/v2/models/scale/infer",
                   R"({"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]})")
              .status == 400);
  auto text = c.get("/metrics");
  REQUIRE(text.status == 200);
  CHECK(text.headers["content-type"].rfind("text/plain; version=0.0.4", 0) == 0);
  auto& t = text.body;
  CHECK(series(t, R"(actorserve_requests_total{model="scale",outcome="success"})") == 5);
  CHECK(series(t, R"(actorserve_requests_total{model="scale",outcome="invalid_input"})") == 2);
  CHECK(series(t, R"(actorserve_request_duration_seconds_count{model="scale"})") == 7);
  CHECK(series(t, R"(actorserve_batch_size_count{model="scale"})") == 5);
  CHECK(series(t, R"(actorserve_queue_duration_seconds_count{model="scale"})") == 5);
  CHECK(series(t, R"(actorserve_batches_total{device="cpu",model="scale",worker="scale/cpu/0"})") == 5);
  CHECK(series(t, R"(actorserve_worker_state{device="cpu",model="scale",worker="scale/cpu/0",state="ready"})") == 1);
  CHECK(series(t, R"(actorserve_requests_in_flight{model="scale"})") == 0);
  CHECK(series(t, R"(actorserve_http_responses_total{code="400"})") == 2);

  auto stats = c.get("/v2/models/scale/stats");
  REQUIRE(stats.status == 200);
  auto doc = parse(stats);
  auto& s = doc["model_stats"].as_array().at(0).as_object();
  CHECK(s["inference_count"] == 5);
  CHECK(s["execution_count"] == 5);
  auto& inf = s["inference_stats"].as_object();
  CHECK(inf["success"].as_object()["count"] == 5);
  CHECK(inf["fail"].as_object()["count"] == 2);
  CHECK(inf["compute_infer"].as_object()["count"] == 5);
  CHECK(s["batch_stats"].as_array().at(0).as_object()["batch_size"] == 1);
  CHECK(c.get("/v2/models/stats").status == 200);
  CHECK(c.get("/v2/models/nope/stats").status == 404);

  // The shipped scrape configuration is valid.
  auto cfg_check = run_command({"promtool", "check", "config",
                                std::string(ACTORSERVE_SOURCE_DIR) + "/config/prometheus.yml"});
  CHECK(cfg_check.first == 0);
  // The exposition passes Prometheus' own checker.
  auto file = write_temp_file("metrics.txt", t);
  auto check = run_command({"sh", "-c", "promtool check metrics < '" + file + "'"});
  INFO(check.second);
  CHECK(check.first == 0);
}

TEST_CASE("a crash shows in the worker's restarts and failed requests", "[integration][metrics]") {
  server_process srv{write_temp_file("metrics_crash.json", scale_config(R"(, "retry": {"max_retries": 0})",
                                                                        R"(, "fault_injection": true)"))};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  CHECK(c.post("/v2/models/scale/infer", infer_body(R"("actorserve_fault": "crash")")).status == 500);
  check_still_serving(srv.port());
  auto t = c.get("/metrics").body;
  CHECK(series(t, R"(actorserve_requests_total{model="scale",outcome="worker_failed"})") == 1);
  CHECK(series(t, R"(actorserve_requests_total{model="scale",outcome="success"})") == 1);
  CHECK(series(t, R"(actorserve_worker_restarts_total{device="cpu",model="scale",worker="scale/cpu/0"})") == 1);
}

TEST_CASE("a real Prometheus server scrapes actorserve and answers queries on its series",
          "[integration][metrics]") {
  server_process srv{write_temp_file("scraped.json", scale_config())};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  for (int i = 0; i < 3; ++i)
    REQUIRE(c.post("/v2/models/scale/infer", infer_body()).status == 200);
  auto prom_port = free_port();
  auto prom_cfg = write_temp_file("prometheus.yml",
                                  "global:\n  scrape_interval: 250ms\n"
                                  "scrape_configs:\n  - job_name: actorserve\n"
                                  "    static_configs:\n      - targets: ['127.0.0.1:"
                                    + std::to_string(srv.port()) + "']\n");
  auto data = write_temp_file("prometheus-data/.keep", "");
  child_process prom{{"prometheus", "--config.file=" + prom_cfg,
                      "--storage.tsdb.path=" + data.substr(0, data.rfind('/')),
                      "--web.listen-address=127.0.0.1:" + std::to_string(prom_port)}};
  // Ask Prometheus' HTTP API until the scraped value arrives (bounded).
  std::string answer;
  eventually([&] {
    http_client q{prom_port, std::chrono::seconds(2)};
    auto r = q.get("/api/v1/query?query=actorserve_requests_total%7Bmodel%3D%22scale%22%2C"
                   "outcome%3D%22success%22%7D");
    if (r.status == 200 && r.body.find("\"result\":[{") != std::string::npos)
      answer = r.body;
    return !answer.empty();
  }, std::chrono::seconds(40));
  INFO(prom.log());
  REQUIRE_FALSE(answer.empty());
  auto doc = json::parse(answer).as_object();
  auto& result = doc["data"].as_object()["result"].as_array().at(0).as_object();
  CHECK(result["metric"].as_object()["job"] == "actorserve");
  CHECK(result["value"].as_array().at(1) == "3");
}

TEST_CASE("traceparent is continued and timing is reported when asked for", "[integration][trace]") {
  server_process srv{write_temp_file("trace.json", scale_config())};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  auto r = c.post("/v2/models/scale/infer", infer_body(R"("timing": true)"),
                  {{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}});
  REQUIRE(r.status == 200);
  auto tp = r.headers["traceparent"];
  CHECK(tp.rfind("00-4bf92f3577b34da6a3ce929d0e0e4736-", 0) == 0);
  CHECK(tp.find("00f067aa0ba902b7") == std::string::npos); // our own span, not the caller's
  auto params = parse(r)["parameters"].as_object();
  REQUIRE(params.contains("timing"));
  auto& timing = params["timing"].as_object();
  CHECK(timing["total_us"].as_int64() >= timing["queue_us"].as_int64() + timing["compute_us"].as_int64());
  // Without the parameter there is no breakdown, and a fresh trace is started.
  r = c.post("/v2/models/scale/infer", infer_body());
  CHECK_FALSE(parse(r)["parameters"].as_object().contains("timing"));
  CHECK(r.headers["traceparent"].size() == 55);
}

TEST_CASE("with log_format json every log line is a JSON object, failures carry the trace id",
          "[integration][trace]") {
  server_process srv{write_temp_file(
    "jsonlog.json", scale_config("", R"(, "log_format": "json", "fault_injection": true)"))};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  auto r = c.post("/v2/models/scale/infer", infer_body(R"("actorserve_fault": "throw")"),
                  {{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}});
  CHECK(r.status == 500);
  srv.stop();
  auto log = srv.log();
  std::istringstream lines(log);
  std::string line;
  int parsed = 0;
  bool failure_traced = false;
  while (std::getline(lines, line)) {
    if (line.empty())
      continue;
    INFO(line);
    auto doc = json::parse(line).as_object(); // throws if any line is not JSON
    CHECK(doc.contains("time"));
    CHECK(doc.contains("level"));
    CHECK(doc.contains("component"));
    ++parsed;
    if (doc.contains("trace_id") && doc["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
        && doc.contains("request_id") && doc["model"] == "scale")
      failure_traced = true;
  }
  CHECK(parsed >= 3);
  CHECK(failure_traced);
}
