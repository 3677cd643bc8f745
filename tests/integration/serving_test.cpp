// The real actorserve process serving the example "scale" backend (no libtorch needed): the
// KServe v2 endpoints, binary data, shared memory, the response cache, pipelines, batching,
// priorities, deadlines and overload.
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

TEST_CASE("the server answers health, metadata and inference on loopback", "[integration]") {
  server_process srv{write_temp_file("health.json", scale_config())};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  CHECK(c.get("/v2/health/live").status == 200);
  auto ready = c.get("/v2/health/ready");
  CHECK(ready.status == 200);
  CHECK(ready.body == R"({"ready":true})");
  auto meta = parse(c.get("/v2"));
  CHECK(meta["name"] == "actorserve");
  auto model = c.get("/v2/models/scale");
  REQUIRE(model.status == 200);
  CHECK(json::serialize(parse(model)["inputs"]) == R"([{"name":"x","datatype":"FP32","shape":[-1,4]}])");
  CHECK(c.get("/v2/models/scale/versions/1").status == 200);
  CHECK(c.get("/v2/models/scale/ready").status == 200);
  CHECK(c.get("/v2/models/scale/versions/1/ready").status == 200);
  auto config = c.get("/v2/models/scale/config"); // Triton's model configuration extension
  REQUIRE(config.status == 200);
  CHECK(json::serialize(parse(config)["input"])
        == R"([{"name":"x","data_type":"TYPE_FP32","dims":[4]}])");
  CHECK(c.get("/v2/models/nope/config").status == 404);
  auto index = c.post("/v2/repository/index", ""); // Triton's model repository extension
  REQUIRE(index.status == 200);
  CHECK(index.body == R"([{"name":"scale","version":"1","state":"READY"}])");
  CHECK(c.post("/v2/repository/index", R"({"ready": "yes"})").status == 400);

  auto r = c.post("/v2/models/scale/versions/1/infer", infer_body());
  REQUIRE(r.status == 200);
  auto doc = parse(r);
  CHECK(doc["model_name"] == "scale");
  CHECK(doc["model_version"] == "1");
  CHECK(doc["id"] == "t1");
  auto& out = doc["outputs"].as_array()[0].as_object();
  CHECK(out["name"] == "y");
  CHECK(json::serialize(out["shape"]) == "[1,4]");
  CHECK(json::serialize(out["data"]) == "[3,5,7,9]");
  CHECK(srv.stop() == 0); // SIGTERM: a clean shutdown
}

TEST_CASE("binary tensor data works in both directions", "[integration]") {
  server_process srv{write_temp_file("binary.json", scale_config())};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  std::string header = R"({"inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","parameters":{"binary_data_size":32}}],
                           "outputs":[{"name":"y","parameters":{"binary_data":true}}]})";
  float in[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  std::string body = header + std::string(reinterpret_cast<const char*>(in), sizeof in);
  auto r = c.post("/v2/models/scale/infer", body,
                  {{"Inference-Header-Content-Length", std::to_string(header.size())},
                   {"Content-Type", "application/octet-stream"}});
  REQUIRE(r.status == 200);
  REQUIRE(r.headers.count("inference-header-content-length"));
  auto json_len = std::stoul(r.headers["inference-header-content-length"]);
  auto doc = json::parse(r.body.substr(0, json_len)).as_object();
  auto& out = doc["outputs"].as_array()[0].as_object();
  CHECK(out["parameters"].as_object()["binary_data_size"] == 32);
  REQUIRE(r.body.size() == json_len + 32);
  float y[8];
  std::memcpy(y, r.body.data() + json_len, sizeof y);
  for (int i = 0; i < 8; ++i)
    CHECK(y[i] == 2 * in[i] + 1);
}

TEST_CASE("system shared memory: a client registers only objects its own user owns",
          "[integration][shm][hardening]") {
  auto config = scale_config();
  config.replace(config.find("4096}"), 5, R"(4096, "allow_shared_memory": true})");
  server_process srv{write_temp_file("shm_owner.json", config)};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  const std::string key = "/actorserve-itest-owner-" + std::to_string(::getpid());
  int fd = ::shm_open(key.c_str(), O_CREAT | O_RDWR, 0666);
  REQUIRE(fd >= 0);
  REQUIRE(::ftruncate(fd, 64) == 0);
  auto body = R"({"key": ")" + key + R"(", "byte_size": 64})";
  CHECK(c.post("/v2/systemsharedmemory/region/mine/register", body).status == 200);
  REQUIRE(c.post("/v2/systemsharedmemory/region/mine/unregister", "").status == 200);
  // Another user's object (as another program's, which the server's user could still open).
  if (::geteuid() == 0 && ::fchown(fd, 65534, 65534) == 0) {
    auto r = c.post("/v2/systemsharedmemory/region/theirs/register", body);
    CHECK(r.status == 400);
    CHECK(error_of(r) == "shared memory region 'theirs': \"" + key + "\" belongs to user 65534, "
                         "not to the client (user 0): a client registers only its own objects "
                         "(http.shared_memory_owner_check)");
  } else {
    WARN("SKIPPED the other user's object: changing an object's owner needs root");
  }
  ::close(fd);
  ::shm_unlink(key.c_str());
}

TEST_CASE("system shared memory: inputs read from and outputs written to a client's region, off "
          "unless allowed",
          "[integration][shm]") {
  {
    server_process srv{write_temp_file("shm_off.json", scale_config())};
    REQUIRE(srv.wait_ready());
    http_client c{srv.port()};
    auto r = c.post("/v2/systemsharedmemory/region/io/register",
                    R"({"key": "/x", "offset": 0, "byte_size": 64})");
    CHECK(r.status == 403);
    CHECK(error_of(r).find("server.http.allow_shared_memory") != std::string::npos);
    CHECK(c.get("/v2/systemsharedmemory/status").status == 403);
    r = c.post("/v2/models/scale/infer",
               R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","parameters":)"
               R"({"shared_memory_region":"io","shared_memory_byte_size":16}}]})");
    CHECK(r.status == 400);
    CHECK(error_of(r) == "input 'x': shared memory is not enabled on this server (its "
                         "deployment's server.http.allow_shared_memory)");
    CHECK(json::serialize(parse(c.get("/v2"))["extensions"]).find("system_shared_memory")
          == std::string::npos);
  }
  auto config = scale_config();
  config.replace(config.find("4096}"), 5, R"(4096, "allow_shared_memory": true})");
  server_process srv{write_temp_file("shm.json", config)};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  CHECK(json::serialize(parse(c.get("/v2"))["extensions"]).find("system_shared_memory")
        != std::string::npos);
  // The client's object: inputs at 0, outputs at 64.
  const std::string key = "/actorserve-itest-" + std::to_string(::getpid());
  int fd = ::shm_open(key.c_str(), O_CREAT | O_RDWR, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(::ftruncate(fd, 256) == 0);
  const float in[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  REQUIRE(::pwrite(fd, in, sizeof in, 0) == sizeof in);
  auto r = c.post("/v2/systemsharedmemory/region/my%20io/register",
                  R"({"key": ")" + key + R"(", "offset": 0, "byte_size": 256})");
  REQUIRE(r.status == 200);
  r = c.get("/v2/systemsharedmemory/status");
  CHECK(r.body == R"([{"name":"my io","key":")" + key + R"(","offset":0,"byte_size":256}])");
  CHECK(c.get("/v2/systemsharedmemory/region/my%20io/status").body == r.body);
  CHECK(c.get("/v2/systemsharedmemory/region/other/status").status == 404);
  CHECK(c.post("/v2/systemsharedmemory/region/my%20io/register",
               R"({"key": ")" + key + R"(", "byte_size": 8})")
          .status
        == 400); // (taken)
  r = c.post("/v2/systemsharedmemory/region/bad/register", R"({"key": 5, "byte_size": 8})");
  CHECK(r.status == 400);
  CHECK(error_of(r) == R"(registering shared memory region 'bad': 'key' must be a string; )"
                       R"(expected {"key": "/name", "offset": bytes (optional), "byte_size": bytes})");

  const std::string infer =
    R"({"inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","parameters":)"
    R"({"shared_memory_region":"my io","shared_memory_byte_size":32}}],)"
    R"("outputs":[{"name":"y","parameters":{"shared_memory_region":"my io",)"
    R"("shared_memory_byte_size":32,"shared_memory_offset":64}}]})";
  r = c.post("/v2/models/scale/infer", infer);
  REQUIRE(r.status == 200);
  auto out = parse(r)["outputs"].as_array()[0].as_object();
  CHECK_FALSE(out.contains("data"));
  CHECK(json::serialize(out["parameters"])
        == R"({"shared_memory_region":"my io","shared_memory_byte_size":32,)"
           R"("shared_memory_offset":64})");
  float y[8] = {};
  REQUIRE(::pread(fd, y, sizeof y, 64) == sizeof y);
  for (int i = 0; i < 8; ++i)
    CHECK(y[i] == 2 * in[i] + 1);

  // A client that shrinks its object under the server gets an error; the node serves on
  // (through a mapping, it would have died of SIGBUS).
  REQUIRE(::ftruncate(fd, 16) == 0);
  r = c.post("/v2/models/scale/infer", infer);
  CHECK(r.status == 400);
  CHECK(error_of(r).find("was truncated since it was registered") != std::string::npos);
  REQUIRE(::ftruncate(fd, 256) == 0);
  check_still_serving(srv.port());

  r = c.post("/v2/systemsharedmemory/unregister", "");
  CHECK(r.body == R"({"unregistered":["my io"]})");
  CHECK(c.get("/v2/systemsharedmemory/status").body == "[]");
  r = c.post("/v2/models/scale/infer", infer);
  CHECK(r.status == 400);
  CHECK(error_of(r) == "input 'x': no shared memory region 'my io' is registered");
  ::close(fd);
  ::shm_unlink(key.c_str());
}

TEST_CASE("the response cache answers an equal request without the model, any difference "
          "reaches it",
          "[integration][cache]") {
  server_process srv{write_temp_file(
    "cache.json", scale_config(R"(, "response_cache_bytes": 1048576)", R"(, "fault_injection": true)"))};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  auto batches = [&] {
    return series(c.get("/metrics").body,
                  R"(actorserve_batches_total{device="cpu",model="scale",worker="scale/cpu/0"})");
  };
  auto warm = batches(); // (warm-up batches)
  auto first = c.post("/v2/models/scale/infer", infer_body());
  REQUIRE(first.status == 200);
  CHECK_FALSE(parse(first)["parameters"].as_object().contains("cache_hit"));
  auto again = c.post("/v2/models/scale/infer", infer_body());
  REQUIRE(again.status == 200);
  auto doc = parse(again);
  CHECK(doc["parameters"].as_object()["cache_hit"] == true);
  CHECK(doc["id"] == "t1");
  CHECK(json::serialize(doc["outputs"].as_array()[0].as_object()["data"]) == "[3,5,7,9]");
  CHECK(batches() == warm + 1); // the second never reached the model
  // Binary outputs and timing come from the same cached answer.
  auto binary = c.post("/v2/models/scale/infer",
                       R"({"id": "t2", "parameters": {"binary_data_output": true, "timing": true},)"
                       R"( "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",)"
                       R"( "data": [1,2,3,4]}]})");
  REQUIRE(binary.status == 200);
  REQUIRE(binary.headers.count("inference-header-content-length"));
  auto json_len = std::stoul(binary.headers["inference-header-content-length"]);
  float y[4];
  REQUIRE(binary.body.size() == json_len + sizeof y);
  std::memcpy(y, binary.body.data() + json_len, sizeof y);
  CHECK((y[0] == 3 && y[1] == 5 && y[2] == 7 && y[3] == 9));
  CHECK(batches() == warm + 1);
  // Other bytes, or a fault to inject, reach the model.
  auto other = c.post("/v2/models/scale/infer", infer_body("", "[1,2,3,5]"));
  CHECK(json::serialize(parse(other)["outputs"].as_array()[0].as_object()["data"]) == "[3,5,7,11]");
  CHECK(batches() == warm + 2);
  auto fault = c.post("/v2/models/scale/infer", infer_body(R"("actorserve_fault": "throw")"));
  CHECK(fault.status == 500);
  CHECK(batches() == warm + 2); // (a failed batch counts as no executed batch)
  auto t = c.get("/metrics").body;
  CHECK(series(t, R"(actorserve_cache_hits_total{model="scale"})") == 2);
  CHECK(series(t, R"(actorserve_cache_misses_total{model="scale"})") == 2);
  CHECK(series(t, R"(actorserve_cache_bytes{model="scale"})") > 0);
  auto stats = parse(c.get("/v2/models/scale/stats"))["model_stats"].as_array()[0].as_object();
  auto& inference = stats["inference_stats"].as_object();
  CHECK(inference["cache_hit"].as_object()["count"] == 2);
  CHECK(inference["cache_miss"].as_object()["count"] == 2);
  CHECK(inference["success"].as_object()["count"] == 4);
  CHECK(json::serialize(parse(c.get("/v2/models/scale/config"))["response_cache"])
        == R"({"enable":true})");
}

TEST_CASE("a pipeline model runs its steps on other models' workers: chained, side by side, "
          "only those needed, a failing or late step fails the request by name",
          "[integration][pipeline]") {
  auto scale_model = [](const std::string& name, int factor, int bias) {
    return R"({"name": ")" + name + R"(", "backend": "scale", "max_batch_size": 8,
      "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
      "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]}],
      "parameters": {"factor": )" + std::to_string(factor) + R"(, "bias": )"
           + std::to_string(bias) + "}}";
  };
  server_process srv{write_temp_file(
    "pipeline.json",
    R"({"server": {"http": {"port": 0}, "fault_injection": true}, "models": [)"
      + scale_model("double", 2, 1) + "," + scale_model("triple", 3, 0) + R"(,
      {"name": "chain", "max_batch_size": 8,
       "inputs": [{"name": "in", "datatype": "FP32", "dims": [4]}],
       "outputs": [{"name": "out", "datatype": "FP32", "dims": [4]},
                   {"name": "side", "datatype": "FP32", "dims": [4]}],
       "pipeline": [
         {"model": "double", "inputs": {"x": "in"}, "outputs": {"y": "mid"}},
         {"model": "triple", "inputs": {"x": "mid"}, "outputs": {"y": "out"}},
         {"model": "triple", "inputs": {"x": "in"}, "outputs": {"y": "side"}}]}]})")};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  CHECK(c.get("/v2/models/chain/ready").status == 200);
  CHECK(parse(c.get("/v2/models/chain"))["platform"] == "ensemble");
  auto config = parse(c.get("/v2/models/chain/config"));
  CHECK(config["ensemble_scheduling"].as_object()["step"].as_array().size() == 3);
  CHECK(c.post("/v2/repository/index", "").body.find(
          R"({"name":"chain","version":"1","state":"READY"})")
        != std::string::npos);
  auto batches = [&](const std::string& model) {
    return series(c.get("/metrics").body, R"(actorserve_batches_total{device="cpu",model=")"
                                            + model + R"(",worker=")" + model + "/cpu/0\"}");
  };
  auto data_of = [](json::object doc, std::size_t i) {
    return json::serialize(doc["outputs"].as_array().at(i).as_object()["data"]);
  };
  const std::string in = R"("inputs": [{"name": "in", "shape": [1, 4], "datatype": "FP32",)"
                         R"( "data": [1, 2, 3, 4]}])";
  // out = 3 (2x + 1), side = 3x.
  auto r = c.post("/v2/models/chain/infer", "{" + in + "}");
  REQUIRE(r.status == 200);
  auto doc = parse(r);
  CHECK(doc["model_name"] == "chain");
  CHECK(data_of(doc, 0) == "[9,15,21,27]");
  CHECK(data_of(doc, 1) == "[3,6,9,12]");
  // Asking for "side" only runs only the step that makes it.
  auto doubles = batches("double");
  r = c.post("/v2/models/chain/infer", "{" + in + R"(, "outputs": [{"name": "side"}]})");
  REQUIRE(r.status == 200);
  doc = parse(r);
  REQUIRE(doc["outputs"].as_array().size() == 1);
  CHECK(data_of(doc, 0) == "[3,6,9,12]");
  CHECK(batches("double") == doubles);
  // Binary outputs, and the pipeline's own input checks.
  r = c.post("/v2/models/chain/infer",
             R"({"parameters": {"binary_data_output": true}, )" + in + "}");
  REQUIRE(r.status == 200);
  REQUIRE(r.headers.count("inference-header-content-length"));
  CHECK(r.body.size() == std::stoul(r.headers["inference-header-content-length"]) + 32);
  r = c.post("/v2/models/chain/infer", R"({"inputs": [{"name": "in", "shape": [1, 3],)"
                                       R"( "datatype": "FP32", "data": [1, 2, 3]}]})");
  CHECK(r.status == 400);
  CHECK(error_of(r).find("expected shape [-1, 4]") != std::string::npos);
  // Concurrent requests each get their own answer (one short-lived actor per request).
  std::vector<std::thread> clients;
  std::atomic<int> right{0};
  for (int t = 0; t < 8; ++t)
    clients.emplace_back([&, t] {
      http_client own{srv.port()};
      for (int i = 0; i < 10; ++i) {
        auto v = std::to_string(t * 10 + i);
        auto res = own.post("/v2/models/chain/infer",
                            R"({"inputs": [{"name": "in", "shape": [1, 4], "datatype": "FP32",)"
                            R"( "data": [)" + v + "," + v + "," + v + "," + v + "]}]}");
        auto want = std::to_string(3 * (2 * (t * 10 + i) + 1));
        if (res.status == 200
            && res.body.find("[" + want + "," + want + "," + want + "," + want + "]")
                 != std::string::npos)
          ++right;
      }
    });
  for (auto& t : clients)
    t.join();
  CHECK(right == 80);
  // A step whose model throws fails the request, named by step and model.
  REQUIRE(c.post("/v2/admin/faults", R"({"model": "triple", "fault": "throw", "count": 1})").status
          == 200);
  r = c.post("/v2/models/chain/infer", "{" + in + R"(, "outputs": [{"name": "out"}]})");
  CHECK(r.status == 500);
  CHECK(error_of(r).rfind("pipeline 'chain', step 1 (model 'triple'): ", 0) == 0);
  // A step that cannot finish before the request's deadline: 504, at the deadline.
  REQUIRE(c.post("/v2/admin/faults", R"({"model": "double", "fault": "slow", "count": 1})").status
          == 200);
  auto t0 = std::chrono::steady_clock::now();
  r = c.post("/v2/models/chain/infer",
             R"({"parameters": {"timeout": 100000}, )" + in + "}");
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(r.status == 504);
  CHECK(error_of(r).rfind("pipeline 'chain', step 0 (model 'double'): ", 0) == 0);
  CHECK(took < std::chrono::milliseconds(290)); // (not the slow batch's 300 ms)
  CHECK(c.post("/v2/models/chain/infer", R"({"parameters": {"actorserve_fault": "crash"}, )" + in
                                           + "}").status
        == 400);
  r = c.post("/v2/models/chain/infer", "{" + in + "}");
  CHECK(r.status == 200);
}

TEST_CASE("a request with a higher priority is queued ahead of those with a lower one",
          "[integration][priority]") {
  auto config = scale_config(R"(, "batching": {"max_queue_delay_us": 0, "priority_levels": 2})",
                             R"(, "fault_injection": true)");
  const std::string batch8 = R"("max_batch_size": 8)"; // one request per batch: the order shows
  config.replace(config.find(batch8), batch8.size(), R"("max_batch_size": 1)");
  server_process srv{write_temp_file("priority.json", config)};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  CHECK(json::serialize(parse(c.get("/v2/models/scale/config"))["dynamic_batching"].as_object()["priority_levels"]) == "2");
  // The worker's next three batches each take 300 ms more: the first holds the queue while the
  // others arrive; then the order they run in shows in when they finish.
  REQUIRE(c.post("/v2/admin/faults", R"({"model": "scale", "fault": "slow", "count": 3})").status
          == 200);
  using clock = std::chrono::steady_clock;
  std::map<std::string, clock::time_point> done;
  std::mutex m;
  auto send = [&](const std::string& name, const std::string& priority) {
    return std::thread([&, name, priority] {
      http_client own{srv.port()};
      auto r = own.post("/v2/models/scale/infer",
                        infer_body(priority.empty() ? "" : R"("priority": )" + priority));
      std::lock_guard<std::mutex> g(m);
      done[name] = r.status == 200 ? clock::now() : clock::time_point{};
    });
  };
  auto metric = [&](const std::string& s) { return series(c.get("/metrics").body, s); };
  std::vector<std::thread> threads;
  threads.push_back(send("blocker", ""));
  // (Dispatched: its time in the queue is observed.)
  REQUIRE(eventually([&] {
    return metric(R"(actorserve_queue_duration_seconds_count{model="scale"})") == 1;
  }));
  double queued = 0;
  for (auto name : {"low1", "low2"}) {
    threads.push_back(send(name, "")); // the default: the lowest level, 2
    ++queued;
    REQUIRE(eventually([&] { return metric(R"(actorserve_queue_depth{model="scale"})") == queued; }));
  }
  threads.push_back(send("high", "1"));
  for (auto& t : threads)
    t.join();
  for (auto name : {"blocker", "low1", "low2", "high"}) {
    INFO(name);
    REQUIRE(done[name] != clock::time_point{});
  }
  auto ms = [&](const char* name) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(done[name] - done["blocker"]).count();
  };
  INFO("after the blocker: high " << ms("high") << " ms, low1 " << ms("low1") << " ms, low2 "
                                  << ms("low2") << " ms");
  // "high" arrived last but ran right after the blocker (+300 ms), the others after it (+600 ms);
  // in arrival order it would have finished last.
  CHECK(done["high"] + std::chrono::milliseconds(200) < done["low1"]);
  CHECK(done["high"] + std::chrono::milliseconds(200) < done["low2"]);
  auto r = c.post("/v2/models/scale/infer", infer_body(R"("priority": 3)"));
  CHECK(r.status == 400);
  CHECK(error_of(r) == "parameter 'priority' must be between 1 and 2 for model 'scale' "
                       "(batching.priority_levels), got 3");
}

TEST_CASE("concurrent requests are batched together", "[integration]") {
  server_process srv{write_temp_file(
    "batching.json", scale_config(R"(, "batching": {"max_queue_delay_us": 20000})"))};
  REQUIRE(srv.wait_ready());
  std::atomic<int> ok{0}, max_batch{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 32; ++i)
    clients.emplace_back([&, i] {
      http_client c{srv.port()};
      auto v = std::to_string(i);
      auto r = c.post("/v2/models/scale/infer", infer_body("", "[" + v + "," + v + "," + v + "," + v + "]"));
      if (r.status != 200)
        return;
      auto doc = json::parse(r.body).as_object();
      auto expected = std::to_string(2 * i + 1);
      if (json::serialize(doc["outputs"].as_array()[0].as_object()["data"])
          == "[" + expected + "," + expected + "," + expected + "," + expected + "]")
        ++ok;
      int size = static_cast<int>(doc["parameters"].as_object()["batch_requests"].as_int64());
      int prev = max_batch.load();
      while (size > prev && !max_batch.compare_exchange_weak(prev, size)) {
      }
    });
  for (auto& t : clients)
    t.join();
  CHECK(ok == 32); // each answer is its own request's
  CHECK(max_batch > 1);
}

TEST_CASE("a worker holding two batches at once answers every request with its own outputs",
          "[integration]") {
  auto config = scale_config(R"(, "max_batch_size": 4, "batching": {"max_queue_delay_us": 0})");
  auto params = std::string(R"("parameters": {"factor": 2, "bias": 1})");
  config.replace(config.find(params), params.size(),
                 R"("parameters": {"factor": 2, "bias": 1, "inflight": 2, "delay_us": 3000})");
  server_process srv{write_temp_file("inflight.json", config)};
  REQUIRE(srv.wait_ready());
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 24; ++i)
    clients.emplace_back([&, i] {
      http_client c{srv.port()};
      for (int k = 0; k < 3; ++k) {
        auto v = std::to_string(i * 10 + k);
        auto r = c.post("/v2/models/scale/infer", infer_body("", "[" + v + "," + v + "," + v + "," + v + "]"));
        auto e = std::to_string(2 * (i * 10 + k) + 1);
        if (r.status == 200
            && json::serialize(json::parse(r.body).as_object()["outputs"].as_array()[0]
                                 .as_object()["data"]) == "[" + e + "," + e + "," + e + "," + e + "]")
          ++ok;
      }
    });
  for (auto& t : clients)
    t.join();
  CHECK(ok == 72);
  check_still_serving(srv.port());
}

TEST_CASE("a request is answered 504 at its deadline, queued or running", "[integration]") {
  server_process srv{write_temp_file(
    "deadline.json",
    scale_config(R"(, "max_batch_size": 1, "batching": {"max_queue_delay_us": 0},
                    "parameters": {"delay_us": 2000000}, "warmup": {"iterations": 0})"))};
  REQUIRE(srv.wait_ready());
  auto t0 = std::chrono::steady_clock::now();
  http_response running, queued;
  std::thread a([&] {
    http_client c{srv.port()};
    running = c.post("/v2/models/scale/infer", infer_body(R"("timeout": 200000)"));
  });
  http_client watcher{srv.port()};
  REQUIRE(eventually([&] { // (dispatched: its time in the queue is observed)
    return series(watcher.get("/metrics").body,
                  R"(actorserve_queue_duration_seconds_count{model="scale"})") == 1;
  }));
  std::thread b([&] {
    http_client c{srv.port()};
    queued = c.post("/v2/models/scale/infer", infer_body(R"("timeout": 100000)"));
  });
  a.join();
  b.join();
  auto elapsed = std::chrono::steady_clock::now() - t0;
  CHECK(running.status == 504);
  CHECK(error_of(running).find("while its batch was running") != std::string::npos);
  CHECK(queued.status == 504);
  CHECK(error_of(queued).find("in the queue") != std::string::npos);
  // Both came at their deadlines, long before the 2 s batch finished.
  CHECK(elapsed < std::chrono::milliseconds(1500));
}

TEST_CASE("a full queue answers 503 with Retry-After", "[integration]") {
  server_process srv{write_temp_file(
    "overload.json",
    scale_config(R"(, "max_batch_size": 1, "batching": {"max_queue_delay_us": 0, "max_queue_size": 2},
                    "parameters": {"delay_us": 300000}, "warmup": {"iterations": 0})"))};
  REQUIRE(srv.wait_ready());
  std::vector<http_response> results(8);
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i)
    clients.emplace_back([&, i] {
      http_client c{srv.port()};
      results[i] = c.post("/v2/models/scale/infer", infer_body());
    });
  for (auto& t : clients)
    t.join();
  int ok = 0, overloaded = 0;
  for (auto& r : results) {
    if (r.status == 200)
      ++ok;
    if (r.status == 503) {
      ++overloaded;
      CHECK(r.headers["retry-after"] == "1");
      CHECK(error_of(r).find("overloaded") != std::string::npos);
    }
  }
  CHECK(ok + overloaded == 8); // every request got exactly one of the two answers
  CHECK(ok >= 3);              // one running and two queued
  CHECK(overloaded >= 1);
}

TEST_CASE("check-config validates a deployment file without serving", "[integration]") {
  auto good = run_command({actorserve_binary(), "check-config", write_temp_file("good.json", scale_config())});
  CHECK(good.first == 0);
  CHECK(good.second.find(": ok (1 model)") != std::string::npos);
  auto bad = run_command({actorserve_binary(), "check-config",
                          write_temp_file("bad.json", scale_config(R"(, "instances": 0, "colour": "red")"))});
  CHECK(bad.first == 1);
  CHECK(bad.second.find("models[0].instances: must be >= 1, got 0") != std::string::npos);
  CHECK(bad.second.find("models[0].colour: unknown key") != std::string::npos);
  auto usage = run_command({actorserve_binary(), "serve"});
  CHECK(usage.first == 2);
  auto shipped = run_command({actorserve_binary(), "check-config",
                              std::string(ACTORSERVE_SOURCE_DIR) + "/examples/custom_backend/scale.json"});
  CHECK(shipped.first == 0);
}
