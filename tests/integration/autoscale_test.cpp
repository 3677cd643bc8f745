// Autoscaling (models[].autoscaling) on the real process: instances follow a load up and down
// with no request lost, the run-time instance count, scale to zero and back, and the metrics
// that say so. The "scale" backend with delay_us 20000 and max_batch_size 1: one instance
// serves about 50 requests a second, so 8 clients in a loop keep ~8 requests ongoing.
#include <atomic>
#include <thread>

#include "scale_model.hpp"

using namespace actorserve::itest;

namespace {

std::string autoscale_config(const std::string& autoscaling) {
  return R"({"server": {"http": {"port": 0}},
    "models": [{"name": "scale", "backend": "scale", "max_batch_size": 1,
      "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
      "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]}],
      "parameters": {"factor": 2, "bias": 1, "delay_us": 20000},
      "autoscaling": )" + autoscaling + "}]}";
}

/// Clients sending requests in a loop until stopped, each pausing `pause` after each answer;
/// every answer that is not a 200 counted.
class load {
public:
  load(uint16_t port, int clients, std::chrono::milliseconds pause = {}) {
    for (int i = 0; i < clients; ++i)
      threads_.emplace_back([this, port, pause] {
        http_client c{port, std::chrono::seconds(10)};
        while (!stop_) {
          std::this_thread::sleep_for(pause);
          auto r = c.post("/v2/models/scale/infer", infer_body());
          (r.status == 200 ? ok_ : failed_)++;
          if (r.status != 200 && failed_ == 1)
            first_failure_ = std::to_string(r.status) + " " + r.body;
        }
      });
  }
  ~load() { finish(); }

  void finish() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable())
        t.join();
  }
  int ok() const { return ok_; }
  int failed() const { return failed_; }
  std::string first_failure() const { return first_failure_; }

private:
  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0}, failed_{0};
  std::string first_failure_;
  std::vector<std::thread> threads_;
};

double metric(uint16_t port, const std::string& series_name) {
  http_client c{port, std::chrono::seconds(5)};
  return series(c.get("/metrics").body, series_name);
}

double instances(uint16_t port, const std::string& state) {
  return metric(port, "actorserve_instances{model=\"scale\",state=\"" + state + "\"}");
}

} // namespace

TEST_CASE("instances follow the load up and back down, and no request is lost on the way",
          "[integration][autoscale]") {
  server_process srv{write_temp_file("autoscale.json", autoscale_config(R"({
      "min_instances": 1, "max_instances": 4, "target_ongoing_requests": 2,
      "upscale_delay_ms": 200, "downscale_delay_ms": 1500, "look_back_ms": 600,
      "interval_ms": 100})"))};
  REQUIRE(srv.wait_ready());
  auto port = srv.port();
  CHECK(eventually([&] { return instances(port, "ready") == 1; }));
  CHECK(instances(port, "stopped") == 3);
  CHECK(metric(port, "actorserve_desired_instances{model=\"scale\"}") == 1);
  {
    load busy{port, 8}; // 8 ongoing at 2 per instance: 4 wanted
    CHECK(eventually([&] { return instances(port, "ready") == 4; }, std::chrono::seconds(20)));
    CHECK(metric(port, "actorserve_desired_instances{model=\"scale\"}") == 4);
    busy.finish();
    INFO(busy.first_failure());
    CHECK(busy.failed() == 0);
    CHECK(busy.ok() > 0);
  }
  CHECK(metric(port, "actorserve_autoscaler_decisions_total{direction=\"up\",model=\"scale\","
                     "reason=\"ongoing_requests\"}") >= 1);
  {
    // The way down under a light load (one instance ~30% busy): drained, not cut off.
    load light{port, 1, std::chrono::milliseconds(40)};
    CHECK(eventually([&] { return instances(port, "ready") == 1 && instances(port, "stopped") == 3; },
                     std::chrono::seconds(20)));
    light.finish();
    INFO(light.first_failure());
    CHECK(light.failed() == 0);
  }
  CHECK(metric(port, "actorserve_autoscaler_decisions_total{direction=\"down\",model=\"scale\","
                     "reason=\"ongoing_requests\"}") >= 1);
  check_still_serving(port);
  CHECK(occurrences(srv.log(), "leaves (scaled down)") >= 3);
  CHECK(srv.stop() == 0);
}

TEST_CASE("the instance count set at run time, and bad requests for it refused clearly",
          "[integration][autoscale]") {
  server_process srv{write_temp_file("autoscale-set.json", autoscale_config(R"({
      "min_instances": 1, "max_instances": 3, "interval_ms": 100,
      "downscale_delay_ms": 60000})"))};
  REQUIRE(srv.wait_ready());
  auto port = srv.port();
  http_client c{port};
  auto r = c.post("/v2/repository/models/scale/instances", R"({"instances": 3})");
  REQUIRE(r.status == 200);
  CHECK(r.body == R"({"name":"scale","desired_instances":3})");
  CHECK(eventually([&] { return instances(port, "ready") == 3; }, std::chrono::seconds(20)));
  r = c.post("/v2/repository/models/scale/instances", R"({"min_instances": 1, "max_instances": 1})");
  REQUIRE(r.status == 200);
  CHECK(eventually([&] { return instances(port, "ready") == 1; }, std::chrono::seconds(20)));
  CHECK(metric(port, "actorserve_autoscaler_decisions_total{direction=\"down\",model=\"scale\","
                     "reason=\"bounds\"}") == 1);

  r = c.post("/v2/repository/models/scale/instances", R"({"instances": 9})");
  CHECK(r.status == 400);
  CHECK(error_of(r).find("max_instances <= 3") != std::string::npos);
  r = c.post("/v2/repository/models/scale/instances", R"({"min_instances": 3, "max_instances": 2})");
  CHECK(r.status == 400);
  r = c.post("/v2/repository/models/scale/instances", R"({"instances": "two"})");
  CHECK(r.status == 400);
  CHECK(error_of(r).find("'instances' must be an integer") != std::string::npos);
  r = c.post("/v2/repository/models/scale/instances", R"({"replicas": 2})");
  CHECK(r.status == 400);
  CHECK(error_of(r).find("unknown key 'replicas'") != std::string::npos);
  r = c.post("/v2/repository/models/nope/instances", R"({"instances": 1})");
  CHECK(r.status == 404);
  check_still_serving(port);
  CHECK(srv.stop() == 0);
}

TEST_CASE("a model scaled to zero stays ready and starts an instance for its first request",
          "[integration][autoscale]") {
  server_process srv{write_temp_file("autoscale-zero.json", autoscale_config(R"({
      "min_instances": 0, "max_instances": 2, "initial_instances": 1, "interval_ms": 100,
      "downscale_delay_ms": 300, "look_back_ms": 200})"))};
  REQUIRE(srv.wait_ready());
  auto port = srv.port();
  CHECK(eventually([&] { return instances(port, "stopped") == 2; }, std::chrono::seconds(20)));
  http_client c{port};
  CHECK(c.get("/v2/models/scale/ready").status == 200); // (at zero, but it starts one)
  CHECK(c.get("/v2/health/ready").status == 200);
  auto t0 = std::chrono::steady_clock::now();
  check_still_serving(port); // waits for the cold start
  auto cold_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - t0).count();
  INFO("cold start took " << cold_ms << " ms");
  CHECK(metric(port, "actorserve_autoscaler_decisions_total{direction=\"up\",model=\"scale\","
                     "reason=\"cold_start\"}") == 1);
  CHECK(instances(port, "ready") == 1);
  CHECK(srv.stop() == 0);
}

TEST_CASE("autoscaling keys are checked and named in errors", "[integration][autoscale]") {
  auto bad = autoscale_config(R"({"min_instances": 3, "max_instances": 2,
      "queue_wait_quantile": 1.5})");
  auto [code, out] = run_command({actorserve_binary(), "check-config",
                                  write_temp_file("autoscale-bad.json", bad)});
  CHECK(code != 0);
  CHECK(out.find("models[0].autoscaling.min_instances: must be <= max_instances (2), got 3")
        != std::string::npos);
  CHECK(out.find("models[0].autoscaling.queue_wait_quantile: must be in (0, 1]")
        != std::string::npos);
}

TEST_CASE("queued requests that will miss their deadlines scale the model up before the delays",
          "[integration][autoscale]") {
  // Ongoing requests alone would wait a minute (upscale_delay_ms) and want one instance per 50
  // ongoing: only the deadline forecast can add an instance here.
  server_process srv{write_temp_file("autoscale-misses.json", autoscale_config(R"({
      "min_instances": 1, "max_instances": 3, "target_ongoing_requests": 50,
      "upscale_delay_ms": 60000, "interval_ms": 100})"))};
  REQUIRE(srv.wait_ready());
  auto port = srv.port();
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i) // each request may wait 100 ms; 8 at 20 ms each cannot all make it
    clients.emplace_back([&] {
      http_client c{port, std::chrono::seconds(10)};
      while (!stop)
        c.post("/v2/models/scale/infer", infer_body("\"timeout\": 100000"));
    });
  CHECK(eventually([&] { return instances(port, "ready") >= 2; }, std::chrono::seconds(20)));
  stop = true;
  for (auto& t : clients)
    t.join();
  CHECK(metric(port, "actorserve_autoscaler_decisions_total{direction=\"up\",model=\"scale\","
                     "reason=\"predicted_misses\"}") >= 1);
  CHECK(metric(port, "actorserve_autoscaler_decisions_total{direction=\"up\",model=\"scale\","
                     "reason=\"ongoing_requests\"}") == 0);
  CHECK(srv.stop() == 0);
}
