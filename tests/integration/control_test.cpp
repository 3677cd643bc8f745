// Model control on the real process: unload and load, rolling reloads under load, and
// isolated workers' processes through them.
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

TEST_CASE("model control: unload answers what the model holds and frees it, load starts it anew, "
          "its cache is emptied",
          "[integration][control]") {
  server_process srv{write_temp_file(
    "control.json", scale_config(R"(, "response_cache_bytes": 65536)", R"(, "fault_injection": true)"))};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  check_still_serving(srv.port());
  REQUIRE(c.post("/v2/models/scale/infer", infer_body()).status == 200); // (cached now)
  CHECK(parse(c.post("/v2/models/scale/infer", infer_body()))["parameters"].as_object().contains(
    "cache_hit"));
  auto state = [&](const std::string& phase) {
    return series(c.get("/metrics").body, R"(actorserve_worker_state{device="cpu",model="scale",)"
                                          R"(worker="scale/cpu/0",state=")" + phase + "\"}");
  };
  CHECK(state("ready") == 1);

  // A request the model holds when it is unloaded is answered; the unload waits for it.
  REQUIRE(c.post("/v2/admin/faults", R"({"model": "scale", "fault": "slow", "count": 1})").status
          == 200);
  http_response slow;
  std::thread held([&] {
    http_client own{srv.port()};
    slow = own.post("/v2/models/scale/infer", infer_body("", "[5,6,7,8]"));
  });
  REQUIRE(eventually([&] { return occurrences(srv.log(), "fault injection: slowing down") >= 1; }));
  auto r = c.post("/v2/repository/models/scale/unload", "");
  held.join();
  CHECK(slow.status == 200);
  REQUIRE(r.status == 200);
  CHECK(r.body == R"({"name":"scale","state":"UNLOADED"})");
  r = c.post("/v2/models/scale/infer", infer_body());
  CHECK(r.status == 404);
  CHECK(error_of(r) == "model 'scale' is unloaded (POST /v2/repository/models/scale/load loads it)");
  CHECK(c.get("/v2/models/scale/ready").status == 404);
  CHECK(c.post("/v2/repository/index", "").body.find(R"("state":"UNAVAILABLE","reason":"model 'scale' is unloaded)")
        != std::string::npos);
  CHECK(state("stopped") == 1);

  r = c.post("/v2/repository/models/scale/load", "{}");
  REQUIRE(r.status == 200);
  CHECK(r.body == R"({"name":"scale","state":"READY"})");
  CHECK(state("ready") == 1);
  r = c.post("/v2/models/scale/infer", infer_body());
  REQUIRE(r.status == 200);
  CHECK_FALSE(parse(r)["parameters"].as_object().contains("cache_hit")); // (emptied)
  // Loading a loaded model reloads it (its workers load the model file again).
  r = c.post("/v2/repository/models/scale/load", R"({"parameters": {"unload_dependents": false}})");
  CHECK(r.status == 200);
  check_still_serving(srv.port());
  // What cannot be done is refused by name.
  r = c.post("/v2/repository/models/nope/unload", "");
  CHECK(r.status == 404);
  CHECK(error_of(r) == "unknown model 'nope'");
  r = c.post("/v2/repository/models/scale/load", R"({"parameters": {"config": "{}"}})");
  CHECK(r.status == 400);
  CHECK(error_of(r).find("a model's configuration comes from the deployment file only")
        != std::string::npos);
  CHECK(c.get("/v2/repository/models/scale/load").status == 405);
}

TEST_CASE("model control: load of a serving model reloads its workers one at a time, refusing "
          "nothing meanwhile",
          "[integration][control]") {
  // Each worker warms up for 10 x 20 ms when it starts, so a reload takes a while per worker.
  auto model = [](const std::string& name, int instances) {
    return R"({"name": ")" + name + R"(", "backend": "scale", "max_batch_size": 8,
      "instances": )" + std::to_string(instances) + R"(,
      "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
      "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]}],
      "warmup": {"batch_sizes": [1], "iterations": 10},
      "parameters": {"factor": 2, "bias": 1, "delay_us": 20000}})";
  };
  server_process srv{write_temp_file(
    "reload.json", R"({"server": {"http": {"port": 0}}, "models": [)" + model("two", 2) + ", "
                     + model("one", 1) + "]}")};
  REQUIRE(srv.wait_ready());
  auto body = R"({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                  "data": [1, 2, 3, 4]}]})";

  for (std::string name : {"two", "one"}) {
    INFO("model " << name);
    std::atomic<bool> stop{false};
    std::mutex lock;
    std::map<unsigned, int> answers, readiness; // by status
    std::vector<std::string> refused;
    std::vector<std::thread> clients;
    for (int i = 0; i < 4; ++i)
      clients.emplace_back([&] {
        http_client own{srv.port()};
        while (!stop) {
          auto r = own.post("/v2/models/" + name + "/infer", body);
          std::lock_guard<std::mutex> guard(lock);
          ++answers[r.status];
          if (r.status != 200)
            refused.push_back(r.body);
        }
      });
    clients.emplace_back([&] {
      http_client own{srv.port()};
      while (!stop) {
        auto status = own.get("/v2/models/" + name + "/ready").status;
        {
          std::lock_guard<std::mutex> guard(lock);
          ++readiness[status];
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
    auto answered = [&] {
      std::lock_guard<std::mutex> guard(lock);
      return answers[200];
    };
    REQUIRE(eventually([&] { return answered() >= 10; })); // served before the load
    http_client c{srv.port()};
    // A second load while the first runs is refused by name (503), and changes nothing.
    http_response second;
    bool first_running = false;
    std::thread again([&] { // (no assertion on this thread: Catch's are the main thread's)
      first_running = eventually([&] {
        return occurrences(srv.log(), "batcher " + name + ": reloading") >= 1;
      });
      http_client own{srv.port()};
      second = own.post("/v2/repository/models/" + name + "/load", "");
    });
    auto r = c.post("/v2/repository/models/" + name + "/load", "");
    again.join();
    CHECK(first_running);
    auto after_load = answered();
    CHECK(eventually([&] { return answered() >= after_load + 10; })); // and served after it
    stop = true;
    for (auto& t : clients)
      t.join();
    CHECK(r.status == 200);
    CHECK(r.body == R"({"name":")" + name + R"(","state":"READY"})");
    CHECK(second.status == 503);
    CHECK(second.body.find("is being reloaded") != std::string::npos);
    INFO((refused.empty() ? std::string() : refused.front()));
    CHECK(answers.size() == 1); // every request answered 200: none refused or failed
    CHECK(answers[200] > 20);
    if (name == "two") // (with two workers one always serves; with one, requests wait for it)
      CHECK(readiness.size() == 1);
    CHECK(readiness[200] > 0);
  }
  auto log = srv.log();
  CHECK(log.find("batcher two: reloading 2 worker(s), one at a time") != std::string::npos);
  CHECK(log.find("batcher one: reloading 1 worker(s), one at a time") != std::string::npos);
  CHECK(log.find("reload done: every worker loaded the model anew") != std::string::npos);
  for (std::string w : {"two/cpu/0", "two/cpu/1", "one/cpu/0"})
    CHECK(log.find("stopping child " + w + " on request") != std::string::npos);
  http_client c{srv.port()};
  auto metrics = c.get("/metrics").body;
  for (std::string w : {"two/cpu/0", "two/cpu/1"})
    CHECK(series(metrics, R"(actorserve_worker_state{device="cpu",model="two",worker=")" + w
                            + R"(",state="ready"})")
          == 1);
}

TEST_CASE("model control with isolated workers: unload ends their processes, load starts new ones",
          "[integration][isolation][control]") {
  server_process srv{write_temp_file(
    "isolated_control.json", scale_config(R"(, "isolation": "process", "instances": 2)"))};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  // (Both workers first: an unload before cpu/0 joined once would leave its count at 1 below.)
  REQUIRE(eventually([&] {
    return occurrences(srv.log(), "worker scale/cpu/0 is ready") == 1
           && occurrences(srv.log(), "worker scale/cpu/1 is ready") == 1;
  }, std::chrono::seconds(15)));
  auto first = isolated_pid(srv.log(), "scale/cpu/0");
  REQUIRE(process_alive(first));
  check_still_serving(srv.port());
  REQUIRE(c.post("/v2/repository/models/scale/unload", "").status == 200);
  CHECK(eventually([&] { return !process_alive(first); }, std::chrono::seconds(10)));
  CHECK(c.post("/v2/models/scale/infer", infer_body()).status == 404);
  REQUIRE(c.post("/v2/repository/models/scale/load", "").status == 200);
  check_still_serving(srv.port());
  // (The model is ready with its first ready worker: the other may come a moment later.)
  CHECK(eventually([&] { return occurrences(srv.log(), "worker scale/cpu/0 is ready") == 2; },
                   std::chrono::seconds(10)));
  auto second = isolated_pid(srv.log(), "scale/cpu/0");
  CHECK(second != first);
  CHECK(process_alive(second));
}
