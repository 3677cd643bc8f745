// The real actorserve process serving the example "scale" backend (no libtorch needed): the
// KServe v2 endpoints, every error status, deadlines, overload, batching and worker restarts.
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

#include "support.hpp"

using namespace actorserve::itest;
namespace json = boost::json;

namespace {

/// A deployment with one "scale" model (y = 2x + 1 on FP32 [batch, 4]); `model_extra` and
/// `server_extra` are spliced into the model and server objects.
std::string scale_config(const std::string& model_extra = "", const std::string& server_extra = "") {
  return R"({"server": {"http": {"port": 0, "max_body_bytes": 4096})" + server_extra + R"(},
    "models": [{"name": "scale", "backend": "scale", "max_batch_size": 8,
      "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
      "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]}],
      "restart": {"backoff_initial_ms": 50, "backoff_max_ms": 200},
      "parameters": {"factor": 2, "bias": 1})" + model_extra + "}]}";
}

std::string infer_body(const std::string& params = "", const std::string& data = "[1,2,3,4]") {
  return R"({"id": "t1", )" + (params.empty() ? "" : R"("parameters": {)" + params + "}, ")
         + R"("inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": )" + data
         + "}]}";
}

json::object parse(const http_response& r) {
  INFO(r.body);
  return json::parse(r.body).as_object();
}

std::string error_of(const http_response& r) {
  INFO(r.body);
  auto doc = parse(r);
  REQUIRE(doc.contains("error"));
  return std::string(doc["error"].as_string());
}

void check_still_serving(uint16_t port) {
  http_client c{port};
  auto r = c.post("/v2/models/scale/infer", infer_body());
  REQUIRE(r.status == 200);
  CHECK(json::serialize(parse(r)["outputs"].as_array()[0].as_object()["data"]) == "[3,5,7,9]");
}

} // namespace

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
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
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
  std::vector<std::thread> threads;
  threads.push_back(send("blocker", ""));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  for (auto name : {"low1", "low2"}) {
    threads.push_back(send(name, ""));  // the default: the lowest level, 2
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
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

TEST_CASE("requests whose framing a proxy could read differently are refused with 400 and the "
          "connection closed", "[integration][hardening]") {
  server_process srv{write_temp_file("framing.json", scale_config())};
  REQUIRE(srv.wait_ready());
  // Behind each bad request, a second one that a smuggler would want served: it never is.
  const std::string smuggled = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  auto exchange = [&](const std::string& request) {
    return raw_exchange(srv.port(), {request + smuggled}, std::chrono::milliseconds(0));
  };
  auto body = infer_body();
  auto len = std::to_string(body.size());
  struct bad_case {
    std::string request, status, message;
  };
  std::vector<bad_case> cases{
    {"POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
       + body,
     "400", "does not end in chunked"},
    {"POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
       + body,
     "400", "does not end in chunked"},
    {"POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
     "Content-Length: " + len + "\r\n\r\n0\r\n\r\n" + body,
     "400", "Content-Length"}, // (Beast's parser refuses this one itself)
    {"POST /v2/models/scale/infer HTTP/1.1\r\nContent-Length: " + len + "\r\n\r\n" + body,
     "400", "needs a Host header"},
    {"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", "400", "only one Host"},
  };
  std::string many = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 100; ++i)
    many += "X-Field-" + std::to_string(i) + ": 1\r\n";
  cases.push_back({many + "\r\n", "431", "at most 100 header fields"});
  for (auto& c : cases) {
    auto out = exchange(c.request);
    INFO(c.request << "\n---\n" << out);
    CHECK(out.rfind("HTTP/1.1 " + c.status, 0) == 0);
    CHECK(occurrences(out, "HTTP/1.1 200") == 0); // the smuggled request is not answered
    CHECK(out.find(c.message) != std::string::npos);
    CHECK(out.find("Connection: close") != std::string::npos);
  }
  // HTTP/1.0 needs no Host; 99 extra fields are within the limit.
  CHECK(exchange("GET /v2/health/live HTTP/1.0\r\n\r\n").rfind("HTTP/1.0 200", 0) == 0);
  auto fine = exchange(many.substr(0, many.rfind("X-Field-99")) + "\r\n");
  CHECK(occurrences(fine, "HTTP/1.1 200 OK") == 2);
  check_still_serving(srv.port());
}

TEST_CASE("bodies that arrive in pieces, chunked, pipelined or truncated are read right",
          "[integration]") {
  server_process srv{write_temp_file("bodies.json", scale_config())};
  REQUIRE(srv.wait_ready());
  auto post = [](const std::string& headers, const std::string& body) {
    return "POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\n" + headers
           + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  };
  auto a = post("", infer_body("", "[1,2,3,4]"));
  // A chunked body (the parser reads it), then a binary one that ends the connection, sent in
  // one write with the end of the first request (pipelined).
  auto chunked_json = infer_body("", "[5,6,7,8]");
  std::ostringstream hex;
  hex << std::hex << chunked_json.size();
  auto b = "POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           + hex.str() + "\r\n" + chunked_json + "\r\n0\r\n\r\n";
  std::string header = R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}]})";
  float in[4] = {-1, 0, 0.5f, 10};
  auto c = post("Connection: close\r\nInference-Header-Content-Length: " + std::to_string(header.size())
                  + "\r\n",
                header + std::string(reinterpret_cast<const char*>(in), sizeof in));
  // The first request's header and body arrive in pieces, 30 ms apart.
  auto cut1 = a.find("\r\n\r\n") - 5, cut2 = a.size() - 7;
  auto out = raw_exchange(srv.port(), {a.substr(0, cut1), a.substr(cut1, cut2 - cut1),
                                       a.substr(cut2) + b + c},
                          std::chrono::milliseconds(30));
  INFO(out);
  CHECK(occurrences(out, "HTTP/1.1 200 OK") == 3);
  CHECK(out.find(R"("data":[3,5,7,9])") != std::string::npos);
  CHECK(out.find(R"("data":[11,13,15,17])") != std::string::npos);
  CHECK(out.find(R"("data":[-1,1,2,21])") != std::string::npos);
  // A body that stops short of its Content-Length: the server waits, the client gives up; the
  // server serves on.
  auto cut = post("", infer_body());
  raw_exchange(srv.port(), {cut.substr(0, cut.size() - 10)}, std::chrono::milliseconds(0),
               std::chrono::milliseconds(200));
  http_client client{srv.port()};
  CHECK(client.post("/v2/models/scale/infer", infer_body()).status == 200);
}

TEST_CASE("bad requests get the right status and a JSON error, and serving goes on",
          "[integration]") {
  server_process srv{write_temp_file("errors.json", scale_config())};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};

  auto r = c.post("/v2/models/scale/infer", "{\"inputs\": [");
  CHECK(r.status == 400);
  CHECK(error_of(r).rfind("request body is not valid JSON", 0) == 0);
  CHECK(r.headers["content-type"] == "application/json");

  r = c.post("/v2/models/scale/infer",
             R"({"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]})");
  CHECK(r.status == 400);
  CHECK(error_of(r) == "input 'x': expected shape [-1, 4] (-1 = batch dimension, 1 to 8), got [1, 3]");

  r = c.post("/v2/models/scale/infer",
             R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"INT32","data":[1,2,3,4]}]})");
  CHECK(r.status == 400);
  CHECK(error_of(r) == "input 'x': expected datatype FP32, got INT32");

  r = c.post("/v2/models/scale/infer",
             R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3]}]})");
  CHECK(r.status == 400);
  CHECK(error_of(r) == "input 'x': shape [1, 4] needs 4 elements, data has 3");

  r = c.post("/v2/models/nope/infer", infer_body());
  CHECK(r.status == 404);
  CHECK(error_of(r) == "unknown model 'nope'");
  CHECK(c.get("/v2/models/nope").status == 404);
  CHECK(c.get("/v2/models/nope/ready").status == 404);
  CHECK(c.get("/v2/models/scale/versions/7").status == 404);
  CHECK(c.post("/v2/models/scale/versions/7/infer", infer_body()).status == 404);
  CHECK(c.get("/v3/whatever").status == 404);
  r = c.get("/v2/models/scale/infer");
  CHECK(r.status == 405);
  CHECK(r.headers["allow"] == "POST"); // RFC 9110: a 405 names the methods allowed
  r = c.post("/v2/health/ready", "");
  CHECK(r.status == 405);
  CHECK(r.headers["allow"] == "GET, HEAD");

  // HEAD is GET without the body: the same status and Content-Length, then the next request
  // on the connection is answered (a body sent after HEAD's header would be read as a response).
  auto raw = raw_exchange(srv.port(), {"HEAD /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
                                       "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n"
                                       "Connection: close\r\n\r\n"},
                          std::chrono::milliseconds(0));
  auto second = raw.find("HTTP/1.1", 1);
  REQUIRE(second != std::string::npos);
  auto head = raw.substr(0, second);
  CHECK(head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(head.find("Content-Length: 13\r\n") != std::string::npos);
  CHECK(head.substr(head.size() - 4) == "\r\n\r\n"); // no body
  CHECK(raw.substr(raw.size() - 13) == "{\"live\":true}");

  r = c.post("/v2/models/scale/infer", infer_body(R"("timeout": 999999999999)"));
  CHECK(r.status == 400);
  CHECK(error_of(r).find("max_timeout_us") != std::string::npos);

  r = c.post("/v2/models/scale/infer", infer_body(R"("actorserve_fault": "crash")"));
  CHECK(r.status == 400); // the fault switch is off unless the deployment enables it
  CHECK(error_of(r).find("fault_injection") != std::string::npos);

  check_still_serving(srv.port());

  // Over max_body_bytes (4096): 413, and the connection is closed rather than read on.
  http_client big{srv.port()};
  r = big.post("/v2/models/scale/infer", std::string(10000, ' '));
  CHECK(r.status == 413);
  CHECK(error_of(r).find("exceeds the limit of 4096 bytes") != std::string::npos);
  check_still_serving(srv.port());
  CHECK(srv.running());
}

TEST_CASE("hostile requests: bytes that are not UTF-8, compressed bodies and bombs, a body sent in full "
          "after its 413, and thousands of mutated requests all get a JSON answer",
          "[integration]") {
  server_process srv{write_temp_file("hostile.json", scale_config())};
  REQUIRE(srv.wait_ready());
  auto strict_json = [](const std::string& text) { // boost::json rejects invalid UTF-8
    json::error_code ec;
    auto v = json::parse(text, ec);
    INFO(text);
    REQUIRE_FALSE(ec);
    return v;
  };
  auto body_of = [](const std::string& raw) { return raw.substr(raw.find("\r\n\r\n") + 4); };

  // A target that is not UTF-8 is named in the error as U+FFFD, not copied into the JSON.
  auto raw = raw_exchange(srv.port(), {"GET /v2/mod\x81ls/sc\xff HTTP/1.1\r\nHost: x\r\n"
                                       "Connection: close\r\n\r\n"},
                          std::chrono::milliseconds(0));
  REQUIRE(raw.rfind("HTTP/1.1 404", 0) == 0);
  CHECK(strict_json(body_of(raw)).as_object()["error"].as_string()
        == "no route for GET /v2/mod\xEF\xBF\xBDls/sc\xEF\xBF\xBD");

  // Compressed bodies (as Triton's clients send them) are decoded; one that inflates past
  // max_body_bytes (4096) is refused as too large; a coding it does not know is refused by name
  // rather than read as JSON or tensor bytes.
  http_client c{srv.port()};
  const std::string gzipped( // Python's gzip.compress(infer_body(), mtime=0)
    "\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xab\x56\xca\x4c\x51\xb2\x52\x50\x2a\x31\x54\xd2"
    "\x51\x50\xca\xcc\x2b\x28\x2d\x29\x06\xf2\xa3\xab\x95\xf2\x12\x73\x53\x41\x32\x15\x20\x89"
    "\xe2\x8c\xc4\x02\x10\x2f\xda\x50\x47\xc1\x24\x16\x28\x90\x92\x58\x92\x58\x52\x09\x16\x53"
    "\x72\x0b\x30\x36\x52\x82\x8a\x41\xd4\x18\xe9\x18\xeb\x98\xc4\xd6\xc6\xd6\x02\x00\xc4\xf9"
    "\x8f\x31\x5f\x00\x00\x00",
    94);
  auto r = c.post("/v2/models/scale/infer", gzipped, {{"Content-Encoding", "gzip"}});
  CHECK(r.status == 200);
  CHECK(json::serialize(parse(r)["outputs"].as_array()[0].as_object()["data"]) == "[3,5,7,9]");
  r = c.post("/v2/models/scale/infer", gzipped.substr(0, 50), {{"Content-Encoding", "gzip"}});
  CHECK(r.status == 400);
  CHECK(error_of(r).rfind("request body (Content-Encoding gzip): ", 0) == 0);
  const std::string bomb = // 100,000 spaces as a raw deflate stream of 115 bytes
    std::string("\xed\xc1\x31\x01\x00\x00\x00\xc2\xa0\x2a\xeb\x9f\xd2\x1a\x1e\x40\x01", 17)
    + std::string(96, '\0') + "\xaf\x06";
  r = c.post("/v2/models/scale/infer", bomb, {{"Content-Encoding", "deflate"}});
  CHECK(r.status == 413);
  CHECK(error_of(r) == "request body (Content-Encoding deflate): it decompresses to more than the "
                       "limit of 4096 bytes (max_body_bytes)");
  r = c.post("/v2/models/scale/infer", infer_body(), {{"Content-Encoding", "br"}});
  CHECK(r.status == 415);
  CHECK(error_of(r)
        == "Content-Encoding 'br' is not supported; send the body as it is or with gzip or deflate");
  CHECK(c.post("/v2/models/scale/infer", infer_body(), {{"Content-Encoding", "identity"}}).status
        == 200);

  // Responses are compressed for clients that accept it (large enough ones: /metrics here; the
  // Python test with Triton's client decodes them with Python's gzip and zlib).
  auto metrics = [&](const std::string& accept) {
    return raw_exchange(srv.port(), {"GET /metrics HTTP/1.1\r\nHost: x\r\n" + accept
                                     + "Connection: close\r\n\r\n"},
                        std::chrono::milliseconds(0));
  };
  raw = metrics("Accept-Encoding: gzip, deflate\r\n");
  REQUIRE(raw.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(raw.find("\r\nContent-Encoding: gzip\r\n") != std::string::npos);
  CHECK(raw.find("\r\nVary: Accept-Encoding\r\n") != std::string::npos);
  CHECK(body_of(raw).rfind("\x1f\x8b\x08", 0) == 0);
  auto plain_metrics = body_of(metrics(""));
  CHECK(plain_metrics.find("actorserve_requests_total") != std::string::npos);
  CHECK(body_of(raw).size() < plain_metrics.size() / 3);
  raw = metrics("Accept-Encoding: deflate\r\n");
  CHECK(raw.find("\r\nContent-Encoding: deflate\r\n") != std::string::npos);
  CHECK(body_of(raw).rfind("\x78\x01", 0) == 0); // (zlib format, level 1)
  raw = metrics("Accept-Encoding: br, gzip;q=0\r\n");
  CHECK(raw.find("Content-Encoding") == std::string::npos);
  CHECK(raw.find("actorserve_requests_total") != std::string::npos);
  // A small answer goes as it is (under compression_min_bytes).
  r = c.post("/v2/models/scale/infer", infer_body(), {{"Accept-Encoding", "gzip"}});
  CHECK(r.status == 200);
  CHECK(r.headers.count("content-encoding") == 0);
  CHECK(json::serialize(parse(r)["outputs"].as_array()[0].as_object()["data"]) == "[3,5,7,9]");

  // A client that writes its whole 32 MB body before it reads gets the 413: the server drops
  // the rest of the body instead of resetting the connection (the write failed with EPIPE).
  std::string big = "POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\nContent-Length: "
                    + std::to_string(32 << 20) + "\r\n\r\n";
  big.resize(big.size() + (32u << 20), ' ');
  raw = raw_exchange(srv.port(), {big}, std::chrono::milliseconds(0));
  REQUIRE(raw.rfind("HTTP/1.1 413", 0) == 0);
  CHECK(strict_json(body_of(raw)).as_object()["error"].as_string()
        == "request body exceeds the limit of 4096 bytes (max_body_bytes)");

  // Mutations of valid requests (JSON and binary tensors): every one gets an answer that is JSON
  // (the outputs, or an "error" string), and the server serves on. Fixed seed: reproducible.
  std::mt19937 rng(20261127);
  auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
  const std::vector<std::string> tokens{"\"", "[", "]", "{", "}", ",", ":", "\\", std::string(1, '\0'),
                                        "\xff", "\xc3", "-", "1e999", "null", "-1", "0", "18446744073709551616",
                                        "\"shape\"", "\"data\"", "\"datatype\"", "\"FP16\"", "\"BYTES\"",
                                        "[[[[[[[[", "\"binary_data_size\":", "\"parameters\":{}"};
  float x[4] = {1, 2, 3, 4};
  std::string binary_header = R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32",)"
                              R"("parameters":{"binary_data_size":16}}],)"
                              R"("outputs":[{"name":"y","parameters":{"binary_data":true}}]})";
  std::map<unsigned, int> statuses;
  for (int i = 0; i < 3000; ++i) {
    bool binary = i % 3 == 0;
    std::string body = binary ? binary_header + std::string(reinterpret_cast<char*>(x), 16)
                              : infer_body(i % 2 ? R"("binary_data_output": true)" : "");
    std::size_t json_len = binary ? binary_header.size() : 0;
    for (std::size_t k = 0, n = pick(3); k < n && !body.empty(); ++k) { // (a third unchanged)
      auto at = pick(body.size());
      switch (pick(4)) {
        case 0: body[at] = static_cast<char>(pick(256)); break;
        case 1: body.erase(at, 1 + pick(12)); break;
        case 2: body.insert(at, tokens[pick(tokens.size())]); break;
        default: body.resize(at); break;
      }
    }
    std::map<std::string, std::string> headers;
    if (binary)
      headers["Inference-Header-Content-Length"]
        = pick(5) ? std::to_string(std::min(json_len, body.size()))
                  : std::vector<std::string>{"-1", "abc", "99999999999999999999", "0", " 7"}[pick(5)];
    r = c.post("/v2/models/scale/infer", body, headers);
    INFO("mutation " << i << ": " << body);
    REQUIRE(r.status != 0);
    ++statuses[r.status];
    CHECK((r.status == 200 || r.status == 400));
    auto answer = r.headers.count("inference-header-content-length")
                    ? r.body.substr(0, std::stoul(r.headers["inference-header-content-length"]))
                    : r.body;
    auto doc = strict_json(answer).as_object();
    CHECK((r.status == 200 ? doc.contains("outputs") : doc["error"].is_string()));
  }
  INFO("answers by status: 200 x" << statuses[200] << ", 400 x" << statuses[400]);
  CHECK(statuses[200] > 1000); // the unchanged ones and some mutated ones are served
  CHECK(statuses[400] > 1000);
  check_still_serving(srv.port());
  CHECK(srv.running());
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
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
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

TEST_CASE("a crashed worker is restarted and serving resumes", "[integration]") {
  // A request that crashes every worker it meets would use up its retries on each restart:
  // this test is about restarts, so retries are off.
  server_process srv{write_temp_file("crash.json", scale_config(R"(, "retry": {"max_retries": 0})",
                                                                R"(, "fault_injection": true)"))};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  check_still_serving(srv.port());
  for (int round = 0; round < 2; ++round) {
    auto r = c.post("/v2/models/scale/infer", infer_body(R"("actorserve_fault": "crash")"));
    CHECK(r.status == 500);
    CHECK(error_of(r).find("worker scale/cpu/0") != std::string::npos);
    CHECK(error_of(r).find("died") != std::string::npos);
    // Requests meanwhile wait for the restarted worker (it is "starting"), then succeed.
    check_still_serving(srv.port());
  }
  auto r = c.post("/v2/models/scale/infer", infer_body(R"("actorserve_fault": "throw")"));
  CHECK(r.status == 500);
  CHECK(error_of(r) == "worker scale/cpu/0: fault injection: backend exception");
  check_still_serving(srv.port());
  CHECK(srv.log().find("restarting in") != std::string::npos);
}

TEST_CASE("a worker that crashes too often exhausts its supervisors: the model stops, the node "
          "serves on", "[integration][supervision]") {
  server_process srv{write_temp_file(
    "giveup.json", scale_config(R"(, "restart": {"max_restarts": 1, "period_s": 60, "backoff_initial_ms": 10,
                                                 "model_max_restarts": 0},
                                    "retry": {"max_retries": 0})",
                                R"(, "fault_injection": true)"))};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  CHECK(c.post("/v2/models/scale/infer", infer_body(R"("actorserve_fault": "crash")")).status == 500);
  check_still_serving(srv.port()); // restart 1 of 1
  CHECK(c.post("/v2/models/scale/infer", infer_body(R"("actorserve_fault": "crash")")).status == 500);
  // No restart left in the workers' supervisor nor in the model's: the model stops (the root
  // does not restart it: server.supervision.model_restart is "temporary" by default), is not
  // ready, and requests fail fast with 503.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  http_response ready;
  do {
    ready = c.get("/v2/models/scale/ready");
  } while (ready.status != 503 && std::chrono::steady_clock::now() < deadline);
  CHECK(ready.status == 503);
  CHECK(c.get("/v2/health/ready").status == 503);
  // (the model's supervisor stops the batcher a moment after its workers stopped)
  http_response r;
  do {
    r = c.post("/v2/models/scale/infer", infer_body());
  } while (r.status == 503 && error_of(r).find("not available") == std::string::npos
           && std::chrono::steady_clock::now() < deadline);
  INFO("last answer: " << r.status << " " << error_of(r));
  CHECK(r.status == 503);
  CHECK(error_of(r).find("model 'scale' is not available") != std::string::npos);
  CHECK(c.get("/v2/health/live").status == 200); // the process itself lives on
  while (srv.log().find("is no longer served") == std::string::npos
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(srv.log().find("supervisor 'workers scale' gave up: more than 1 restarts within 60 s")
        != std::string::npos);
  CHECK(srv.log().find("supervisor 'model scale' gave up") != std::string::npos);
  CHECK(srv.log().find("model 'scale' is no longer served") != std::string::npos);
}

TEST_CASE("a model its supervisors gave up is started again after a crash-loop back-off that "
          "doubles", "[integration][supervision]") {
  server_process srv{write_temp_file(
    "crashloop.json",
    scale_config(R"(, "restart": {"max_restarts": 0, "backoff_initial_ms": 10, "model_max_restarts": 0},
                    "retry": {"max_retries": 0})",
                 R"(, "fault_injection": true,
                    "supervision": {"model_cooldown_ms": 1000, "model_cooldown_max_ms": 4000})"))};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  auto metric = [&](const std::string& name) {
    return series(c.get("/metrics").body, name + R"({model="scale"})");
  };
  auto crash_and_give_up = [&](int in_a_row) {
    INFO("give-up " << in_a_row);
    CHECK(c.post("/v2/models/scale/infer", infer_body(R"("actorserve_fault": "crash")")).status == 500);
    // (no restart left anywhere: the model stops at once, then waits out its cool-down; for a
    // moment before the root records that, readiness says only "not ready")
    REQUIRE(eventually([&] {
      auto r = c.get("/v2/models/scale/ready");
      return r.status == 503 && r.body.find("crash-loop back-off") != std::string::npos;
    }, std::chrono::seconds(5)));
    auto ready = c.get("/v2/models/scale/ready");
    CHECK(error_of(ready).find("model 'scale' is not available: it is in crash-loop back-off, "
                               "its supervisors gave up (")
          == 0);
    CHECK(error_of(ready).find("(give-up " + std::to_string(in_a_row) + " in a row)")
          != std::string::npos);
    auto r = c.post("/v2/models/scale/infer", infer_body());
    CHECK(r.status == 503);
    CHECK(error_of(r).find("crash-loop back-off") != std::string::npos);
    CHECK(c.get("/v2/health/ready").status == 503);
    CHECK(metric("actorserve_model_crash_loop") == 1);
    CHECK(metric("actorserve_model_give_ups_total") == in_a_row);
    // Back after its cool-down, with no request or operator needed.
    CHECK(eventually([&] { return c.get("/v2/models/scale/ready").status == 200; },
                     std::chrono::seconds(10)));
    check_still_serving(srv.port());
    CHECK(metric("actorserve_model_crash_loop") == 0);
  };
  crash_and_give_up(1);
  CHECK(srv.log().find("model 'scale' is no longer served: ") != std::string::npos);
  CHECK(srv.log().find("it is started again in 1.0 s (crash-loop back-off, give-up 1 in a row)")
        != std::string::npos);
  crash_and_give_up(2); // at once again: the wait doubles
  CHECK(srv.log().find("it is started again in 2.0 s (crash-loop back-off, give-up 2 in a row)")
        != std::string::npos);
  CHECK(c.get("/v2/health/ready").status == 200);
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

TEST_CASE("SIGTERM drains: requests in flight are answered, new ones get 503, then the process "
          "exits 0", "[integration][shutdown]") {
  server_process srv{write_temp_file(
    "drain.json", scale_config(R"(, "batching": {"max_queue_delay_us": 0})",
                               R"(, "fault_injection": true)"))};
  REQUIRE(srv.wait_ready());
  // Connections opened before the signal: one for readiness, one for a late request.
  http_client ready_probe{srv.port()}, late{srv.port()};
  REQUIRE(ready_probe.get("/v2/health/live").status == 200);
  REQUIRE(late.get("/v2/health/live").status == 200);
  // Four requests, each in a batch the worker makes 300 ms slow: in flight for up to 1.2 s.
  std::vector<http_response> answers(4);
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i)
    clients.emplace_back([&, i] {
      answers[i] = http_client{srv.port()}.post("/v2/models/scale/infer",
                                                infer_body(R"("actorserve_fault": "slow")"));
    });
  REQUIRE(eventually([&] {
    auto t = http_client{srv.port()}.get("/metrics").body;
    return series(t, R"(actorserve_requests_in_flight{model="scale"})") == 4;
  }, std::chrono::seconds(5)));
  srv.signal(SIGTERM);
  REQUIRE(eventually([&] { return srv.log().find("draining (") != std::string::npos; },
                     std::chrono::seconds(5)));
  auto r = ready_probe.get("/v2/health/ready");
  CHECK(r.status == 503);
  CHECK(r.headers["connection"] == "close");
  r = late.post("/v2/models/scale/infer", infer_body());
  CHECK(r.status == 503);
  CHECK(error_of(r).find("shutting down") != std::string::npos);
  CHECK(r.headers["retry-after"] == "1");
  CHECK(http_client{srv.port(), std::chrono::seconds(2)}.get("/v2/health/live").status == 0); // not accepted
  for (auto& t : clients)
    t.join();
  for (auto& a : answers) {
    CHECK(a.status == 200);
    CHECK(a.body.find("[3,5,7,9]") != std::string::npos);
  }
  // It exits by itself once they are answered. (Not stop(): its SIGTERM would be a second signal,
  // which ends the drain at once, possibly between a client reading its answer and the server
  // counting that request done: slow under the sanitizers.)
  CHECK(eventually([&] { return !srv.running(); }, std::chrono::seconds(10)));
  CHECK(srv.stop() == 0);
  CHECK(srv.log().find("still unanswered") == std::string::npos);
}

TEST_CASE("the drain ends at drain_timeout_ms even with a request still running",
          "[integration][shutdown]") {
  auto cfg = scale_config("", R"(, "fault_injection": true)");
  cfg.replace(cfg.find(R"("max_body_bytes")"), 0, R"("drain_timeout_ms": 50, )");
  server_process srv{write_temp_file("drain_bound.json", cfg)};
  REQUIRE(srv.wait_ready());
  http_response answer;
  std::thread client([&] {
    answer = http_client{srv.port()}.post("/v2/models/scale/infer",
                                          infer_body(R"("actorserve_fault": "slow")"));
  });
  REQUIRE(eventually([&] {
    auto t = http_client{srv.port()}.get("/metrics").body;
    return series(t, R"(actorserve_requests_in_flight{model="scale"})") == 1;
  }, std::chrono::seconds(5)));
  CHECK(srv.stop() == 0);
  client.join();
  // The batch sleeps 300 ms; the drain gave up before it ended and closed the connection.
  CHECK(answer.status == 0);
  CHECK(srv.log().find("1 requests still unanswered at the end of the drain") != std::string::npos);
}

TEST_CASE("out of file descriptors, the server pauses accepting, keeps serving and recovers",
          "[integration]") {
  auto port = free_port();
  auto cfg = scale_config();
  cfg.replace(cfg.find(R"("port": 0)"), 9, R"("port": )" + std::to_string(port));
  auto path = write_temp_file("fd_limit.json", cfg);
  child_process srv{{"sh", "-c", "ulimit -n 64 && exec '" + actorserve_binary() + "' serve --config '"
                                   + path + "'"}};
  REQUIRE(eventually([&] {
    return http_client{port, std::chrono::seconds(1)}.get("/v2/health/ready").status == 200;
  }, std::chrono::seconds(30)));
  http_client before{port};
  REQUIRE(before.get("/v2/health/live").status == 200);
  // 100 connections: the kernel completes them (listen backlog); the server runs out of
  // descriptors after about 50.
  std::vector<int> held;
  for (int i = 0; i < 100; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    held.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  // A connection it had accepted is served meanwhile, and the failure is reported, not spun on.
  auto r = before.post("/v2/models/scale/infer", infer_body());
  CHECK(r.status == 200);
  auto failures = occurrences(srv.log(), "cannot accept connections: Too many open files");
  CHECK(failures >= 1);
  CHECK(failures <= 3);
  CHECK(occurrences(srv.log(), "accept") <= 3);
  for (int fd : held)
    ::close(fd);
  // Descriptors are back: it accepts again (within its back-off of at most 500 ms).
  CHECK(eventually([&] {
    return http_client{port, std::chrono::seconds(1)}.post("/v2/models/scale/infer", infer_body()).status
           == 200;
  }, std::chrono::seconds(5)));
}

TEST_CASE("request bodies past max_inflight_body_bytes get 503 until the held ones are answered, a "
          "JSON document too large for it alone gets 413",
          "[integration]") {
  auto cfg = scale_config(R"(, "max_batch_size": 1, "batching": {"max_queue_delay_us": 0})",
                          R"(, "fault_injection": true)");
  cfg.replace(cfg.find(R"("max_body_bytes": 4096)"), 22,
              R"("max_body_bytes": 1024, "max_inflight_body_bytes": 1024)");
  server_process srv{write_temp_file("body_budget.json", cfg)};
  REQUIRE(srv.wait_ready());
  // Five requests the worker holds 300 ms each, one after another; meanwhile one whose body
  // (900 bytes) would pass the budget of 1024 with any of them.
  auto slow = infer_body(R"("actorserve_fault": "slow")");
  auto big = infer_body() + std::string(900 - infer_body().size(), ' ');
  std::vector<http_response> held(5);
  std::vector<std::thread> clients;
  for (auto& h : held)
    clients.emplace_back([&] { h = http_client{srv.port()}.post("/v2/models/scale/infer", slow); });
  REQUIRE(eventually([&] {
    auto t = http_client{srv.port()}.get("/metrics").body;
    return series(t, R"(actorserve_requests_in_flight{model="scale"})") >= 1;
  }, std::chrono::seconds(5)));
  auto held_bytes = [&] {
    return series(http_client{srv.port()}.get("/metrics").body, "actorserve_http_request_body_bytes");
  };
  CHECK(held_bytes() >= static_cast<double>(slow.size()));
  http_client c{srv.port()};
  auto r = c.post("/v2/models/scale/infer", big);
  CHECK(r.status == 503);
  CHECK(error_of(r).find("(http.max_inflight_body_bytes)") != std::string::npos);
  CHECK(r.headers["retry-after"] == "1");
  // A chunked body is held to the same budget once it is read.
  auto chunked = [&] {
    return raw_exchange(srv.port(), {"POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\n"
                                     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                     "384\r\n" + big + "\r\n0\r\n\r\n"},
                        std::chrono::milliseconds(0));
  };
  auto out = chunked();
  CHECK(out.find("HTTP/1.1 503") != std::string::npos);
  CHECK(out.find("max_inflight_body_bytes") != std::string::npos);
  for (auto& t : clients)
    t.join();
  for (auto& h : held)
    CHECK(h.status == 200);
  // Answered: its bytes are free again, and so is the budget for the large ones.
  CHECK(http_client{srv.port()}.post("/v2/models/scale/infer", big).status == 200);
  CHECK(chunked().find("HTTP/1.1 200 OK") != std::string::npos);
  // A parsed JSON document takes many times its text (16 bytes a number): it counts in the budget
  // while it is decoded. 441 numbers in 900 bytes need more than 1024 bytes on their own.
  std::string dense = R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[0)";
  for (int i = 0; i < 440; ++i)
    dense += ",0";
  dense += "]}]}";
  REQUIRE(dense.size() <= 1024);
  r = c.post("/v2/models/scale/infer", dense);
  CHECK(r.status == 413);
  CHECK(error_of(r).find("JSON document takes more memory than the server allows for request "
                         "bodies (http.max_inflight_body_bytes 1024): send large tensors as binary")
        != std::string::npos);
  CHECK(eventually([&] { return held_bytes() == 0; }, std::chrono::seconds(2)));
}

TEST_CASE("request bodies count in max_inflight_body_bytes as their bytes arrive, not as they are "
          "declared", "[integration][hardening]") {
  auto cfg = scale_config();
  cfg.replace(cfg.find(R"("max_body_bytes": 4096)"), 22,
              R"("max_body_bytes": 1024, "max_inflight_body_bytes": 1024)");
  server_process srv{write_temp_file("body_arrival.json", cfg)};
  REQUIRE(srv.wait_ready());
  auto held_bytes = [&] {
    return series(http_client{srv.port()}.get("/metrics").body, "actorserve_http_request_body_bytes");
  };
  const std::string head = "POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\n";
  {
    // Ten clients declare bodies that would fill the budget, and send none of them: they hold
    // none of it, and real requests are served.
    std::vector<std::unique_ptr<stalled_connection>> idle;
    for (int i = 0; i < 10; ++i)
      idle.push_back(std::make_unique<stalled_connection>(
        srv.port(), head + "Content-Length: 1000\r\n\r\n"));
    for (int i = 0; i < 5; ++i)
      check_still_serving(srv.port());
    CHECK(held_bytes() == 0);
    // One sends 600 bytes of its body: those it holds, chunked bodies alike.
    idle[0]->send(std::string(600, ' '));
    stalled_connection chunked{srv.port(), head + "Transfer-Encoding: chunked\r\n\r\n12c\r\n"
                                             + std::string(300, ' ')};
    REQUIRE(eventually([&] { return held_bytes() == 900; }, std::chrono::seconds(5)));
    // A request whose body does not fit beside them gets 503; one that does is served.
    auto r = http_client{srv.port()}.post("/v2/models/scale/infer",
                                         infer_body() + std::string(200, ' '));
    CHECK(r.status == 503);
    CHECK(error_of(r).find("(http.max_inflight_body_bytes)") != std::string::npos);
    check_still_serving(srv.port());
  }
  // The stalled clients gone, their bytes are free again.
  CHECK(eventually([&] { return held_bytes() == 0; }, std::chrono::seconds(5)));
  check_still_serving(srv.port());
}

TEST_CASE("every request of a keep-alive connection gets the header timeout once it starts, and "
          "connections past the bounds are refused", "[integration][hardening]") {
  auto cfg = scale_config();
  cfg.replace(cfg.find(R"("max_body_bytes": 4096)"), 22,
              R"("max_body_bytes": 4096, "header_timeout_ms": 300, "idle_timeout_ms": 60000,
                 "max_connections": 6, "max_connections_per_client": 4)");
  server_process srv{write_temp_file("slow_clients.json", cfg)};
  REQUIRE(srv.wait_ready());
  const std::string live = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n";
  {
    // A slowloris: its first request served, the second one's header trickles in. It is closed
    // after the header timeout, not kept for the idle timeout (a minute).
    stalled_connection slow{srv.port(), live + "GET /v2/health/live HTTP/1.1\r\nHo"};
    CHECK(slow.closed_within(std::chrono::seconds(10)));
    CHECK(occurrences(slow.received(), "HTTP/1.1 200 OK") == 1);
    // An idle keep-alive connection between requests is kept (the idle timeout).
    stalled_connection idle{srv.port(), live};
    CHECK_FALSE(idle.closed_within(std::chrono::milliseconds(1000)));
    CHECK(occurrences(idle.received(), "HTTP/1.1 200 OK") == 1);
  }
  // Four connections from one address are the most it holds; a fifth is refused with 503.
  std::vector<std::unique_ptr<stalled_connection>> held;
  for (int i = 0; i < 4; ++i)
    held.push_back(std::make_unique<stalled_connection>(srv.port(), live));
  for (auto& h : held) // (each was accepted and answered)
    REQUIRE(eventually([&] { return !h->closed_within(std::chrono::milliseconds(20))
                                    && occurrences(h->received(), "200 OK") == 1; },
                       std::chrono::seconds(5)));
  stalled_connection fifth{srv.port(), live};
  REQUIRE(fifth.closed_within(std::chrono::seconds(5)));
  INFO(fifth.received());
  CHECK(fifth.received().rfind("HTTP/1.1 503", 0) == 0);
  CHECK(fifth.received().find("too many connections: client 127.0.0.1 holds 4 connections, the "
                              "limit for one address (http.max_connections_per_client)")
        != std::string::npos);
  CHECK(fifth.received().find("Retry-After: 1") != std::string::npos);
  held.pop_back(); // one closes: there is room again
  CHECK(eventually([&] {
    return http_client{srv.port(), std::chrono::seconds(2)}.get("/v2/health/live").status == 200;
  }, std::chrono::seconds(5)));
}

TEST_CASE("state-changing requests from a web page of another origin are refused, and model "
          "control can be switched off", "[integration][hardening]") {
  auto cfg = scale_config("", R"(, "fault_injection": true)");
  cfg.replace(cfg.find(R"("max_body_bytes": 4096)"), 22,
              R"("max_body_bytes": 4096, "allowed_origins": ["https://console.example.com"])");
  server_process srv{write_temp_file("origins.json", cfg)};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  // What a page on another site makes a browser send (a "simple" POST: no preflight).
  const std::map<std::string, std::string> evil{{"Origin", "https://evil.example"},
                                                {"Content-Type", "text/plain"}};
  for (auto target : {"/v2/repository/models/scale/unload", "/v2/repository/models/scale/load",
                      "/v2/systemsharedmemory/region/r/unregister", "/v2/admin/faults"}) {
    INFO(target);
    auto r = c.post(target, "", evil);
    CHECK(r.status == 403);
    CHECK(error_of(r) == "a state-changing request from a web page of origin "
                         "'https://evil.example' is refused (http.allowed_origins)");
  }
  check_still_serving(srv.port()); // nothing was unloaded
  CHECK(c.post("/v2/models/scale/infer", infer_body(), evil).status == 200); // (no state change)
  // The allowed origin, and clients that send none (curl, Triton's clients), are served.
  CHECK(c.post("/v2/repository/models/scale/unload", "",
               {{"Origin", "https://console.example.com"}}).status == 200);
  CHECK(c.post("/v2/repository/models/scale/load", "").status == 200);
  check_still_serving(srv.port());
  // Model control switched off: load and unload are refused whoever asks.
  server_process off{write_temp_file(
    "control_off.json", scale_config("", R"(, "model_control": false)"))};
  REQUIRE(off.wait_ready());
  auto r = http_client{off.port()}.post("/v2/repository/models/scale/unload", "");
  CHECK(r.status == 403);
  CHECK(error_of(r) == "model control is switched off on this server (server.model_control)");
  CHECK(http_client{off.port()}.post("/v2/repository/index", "").status == 200);
  check_still_serving(off.port());
}

TEST_CASE("bodies of requests other than inference are bounded before they are parsed",
          "[integration][hardening]") {
  auto cfg = scale_config();
  cfg.replace(cfg.find(R"("max_body_bytes": 4096)"), 22, R"("max_body_bytes": 1048576)");
  server_process srv{write_temp_file("control_bodies.json", cfg)};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  // 100 KB of small numbers: far more memory once parsed than as text.
  std::string big = R"({"ready": true, "x": [0)";
  while (big.size() < 100'000)
    big += ",0";
  big += "]}";
  auto r = c.post("/v2/repository/index", big);
  CHECK(r.status == 413);
  CHECK(error_of(r) == "the body of POST /v2/repository/index may be at most 65536 bytes, got "
                         + std::to_string(big.size()));
  CHECK(c.post("/v2/repository/index", R"({"ready": true})").status == 200);
  // Inference bodies keep their own bound (max_body_bytes).
  CHECK(c.post("/v2/models/scale/infer", infer_body() + std::string(100'000, ' ')).status == 200);
}

TEST_CASE("a body that falls behind the minimum data rate is cut off, one that keeps it up is "
          "served", "[integration][hardening]") {
  auto cfg = scale_config();
  cfg.replace(cfg.find(R"("max_body_bytes": 4096)"), 22,
              R"("max_body_bytes": 8192, "body_timeout_ms": 60000, "body_grace_ms": 500,
                 "min_body_bytes_per_s": 1000)");
  server_process srv{write_temp_file("body_rate.json", cfg)};
  REQUIRE(srv.wait_ready());
  auto body = infer_body() + std::string(4000 - infer_body().size(), ' ');
  auto head = "POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  // 100 bytes, then nothing: it had 0.6 s (grace + 100 bytes at 1000 B/s), not the 60 s timeout.
  stalled_connection trickle{srv.port(), head + body.substr(0, 100)};
  CHECK(trickle.closed_within(std::chrono::seconds(10)));
  // 1000 bytes every 300 ms keeps ahead of the rate: served.
  std::vector<std::string> pieces{head + body.substr(0, 1000)};
  for (std::size_t at = 1000; at < body.size(); at += 1000)
    pieces.push_back(body.substr(at, 1000));
  auto out = raw_exchange(srv.port(), pieces, std::chrono::milliseconds(300));
  CHECK(out.rfind("HTTP/1.1 200 OK", 0) == 0);
  check_still_serving(srv.port());
}

TEST_CASE("a queued request whose client closes its connection is dropped, not run",
          "[integration]") {
  server_process srv{write_temp_file(
    "cancel.json", scale_config(R"(, "max_batch_size": 1,
                                   "batching": {"max_queue_delay_us": 0, "max_queue_size": 3})",
                                R"(, "fault_injection": true)"))};
  REQUIRE(srv.wait_ready());
  // The worker is busy 300 ms with one request; three more queue behind it, and their clients
  // close their connections (a pipelined fourth on another connection is still wanted).
  http_response first;
  std::thread busy([&] {
    first = http_client{srv.port()}.post("/v2/models/scale/infer",
                                         infer_body(R"("actorserve_fault": "slow")"));
  });
  auto metric = [&](const std::string& series_name) {
    return series(http_client{srv.port()}.get("/metrics").body, series_name);
  };
  REQUIRE(eventually([&] { return metric(R"(actorserve_requests_in_flight{model="scale"})") == 1; },
                     std::chrono::seconds(5)));
  auto body = infer_body();
  auto request = "POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\nContent-Length: "
                 + std::to_string(body.size()) + "\r\n\r\n" + body;
  for (int i = 0; i < 3; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(srv.port());
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ::close(fd);
  }
  // Two pipelined requests on one connection: the second one's last bytes reach the socket while
  // the first is queued (readable, but not a close); both are answered. The queue (3 places)
  // still holds the three abandoned requests: it makes room by dropping them.
  auto closing = "POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  auto piped = raw_exchange(srv.port(), {request + closing.substr(0, 40), closing.substr(40)},
                            std::chrono::milliseconds(50));
  CHECK(occurrences(piped, "HTTP/1.1 200 OK") == 2);
  busy.join();
  CHECK(first.status == 200);
  CHECK(eventually([&] {
    return metric(R"(actorserve_requests_total{model="scale",outcome="cancelled"})") == 3;
  }, std::chrono::seconds(5)));
  // Run: the slow one and the two pipelined ones; the three whose clients left never were.
  CHECK(metric(R"(actorserve_batches_total{device="cpu",model="scale",worker="scale/cpu/0"})") == 3);
  check_still_serving(srv.port());
}

TEST_CASE("a client that expects 100-continue gets it before sending its body", "[integration]") {
  server_process srv{write_temp_file("continue.json", scale_config())};
  REQUIRE(srv.wait_ready());
  auto body = write_temp_file("continue_body.json", infer_body() + std::string(2000, ' '));
  auto url = "http://127.0.0.1:" + std::to_string(srv.port()) + "/v2/models/scale/infer";
  auto out = run_command({"curl", "-sv", "--max-time", "10", "-H", "Expect: 100-continue",
                          "--data-binary", "@" + body, url});
  CHECK(out.first == 0);
  CHECK(out.second.find("< HTTP/1.1 100 Continue") != std::string::npos);
  CHECK(out.second.find("< HTTP/1.1 200 OK") != std::string::npos);
  CHECK(out.second.find("[3,5,7,9]") != std::string::npos);
}

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
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(40);
  while (std::chrono::steady_clock::now() < deadline) {
    http_client q{prom_port, std::chrono::seconds(2)};
    auto r = q.get("/api/v1/query?query=actorserve_requests_total%7Bmodel%3D%22scale%22%2C"
                   "outcome%3D%22success%22%7D");
    if (r.status == 200 && r.body.find("\"result\":[{") != std::string::npos) {
      answer = r.body;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
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

namespace {

http_response arm(uint16_t port, const std::string& body) {
  http_client c{port};
  return c.post("/v2/admin/faults", body);
}

} // namespace

TEST_CASE("the fault endpoint is off unless the deployment enables fault injection",
          "[integration][faults]") {
  server_process srv{write_temp_file("nofaults.json", scale_config())};
  REQUIRE(srv.wait_ready());
  auto r = arm(srv.port(), R"({"model":"scale","fault":"crash"})");
  CHECK(r.status == 404);
  CHECK(error_of(r).find("disabled") != std::string::npos);
}

TEST_CASE("a worker crash is retried on another worker and the client never sees it",
          "[integration][faults][retry]") {
  server_process srv{write_temp_file(
    "retry.json", scale_config(R"(, "instances": 2, "max_batch_size": 1, "batching": {"max_queue_delay_us": 0})",
                               R"(, "fault_injection": true)"))};
  // /v2/health/ready turns true with the first worker; a fault aimed at a named worker needs
  // that worker ready.
  REQUIRE(eventually([&] { return ready_workers(srv.port()) >= 2; }, std::chrono::seconds(20)));
  auto armed = arm(srv.port(), R"({"model":"scale","worker":"scale/cpu/0","fault":"crash"})");
  REQUIRE(armed.status == 200);
  CHECK(parse(armed)["worker"] == "scale/cpu/0");
  CHECK(arm(srv.port(), R"({"model":"scale","worker":"scale/cpu/9","fault":"crash"})").status == 400);
  CHECK(arm(srv.port(), R"({"model":"scale","fault":"melt"})").status == 400);
  for (int i = 0; i < 6; ++i)
    check_still_serving(srv.port()); // the crashed batch's request is answered by scale/cpu/1
  http_client c{srv.port()};
  auto t = c.get("/metrics").body;
  CHECK(series(t, R"(actorserve_retries_total{model="scale"})") == 1);
  CHECK(series(t, R"(actorserve_requests_total{model="scale",outcome="success"})") == 6);
  CHECK(series(t, R"(actorserve_requests_total{model="scale",outcome="worker_failed"})") == 0);
  CHECK(srv.log().find("retrying (attempt 2 of 3)") != std::string::npos);
}

TEST_CASE("a request the model throws on fails alone, the requests batched with it are answered",
          "[integration][faults][retry]") {
  // One worker, as on a single GPU: before, the batch's other requests waited for another
  // worker until their deadline and got 504.
  server_process srv{write_temp_file(
    "poison.json", scale_config(R"(, "batching": {"max_queue_delay_us": 20000})",
                                R"(, "fault_injection": true)"))};
  REQUIRE(srv.wait_ready());
  std::vector<http_response> answers(8);
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i)
    clients.emplace_back([&, i] {
      http_client c{srv.port()};
      auto data = "[" + std::to_string(i) + ",0,0,0]";
      answers[i] = c.post("/v2/models/scale/infer",
                          infer_body(i == 3 ? R"("actorserve_fault": "throw")" : "", data));
    });
  for (auto& t : clients)
    t.join();
  for (int i = 0; i < 8; ++i) {
    INFO("request " << i << ": " << answers[i].body);
    if (i == 3) {
      CHECK(answers[i].status == 500);
      CHECK(error_of(answers[i]).find("fault injection: backend exception") != std::string::npos);
      continue;
    }
    REQUIRE(answers[i].status == 200);
    CHECK(json::serialize(parse(answers[i])["outputs"].as_array()[0].as_object()["data"])
          == "[" + std::to_string(2 * i + 1) + ",1,1,1]");
  }
  CHECK(srv.log().find("retrying them in two halves") != std::string::npos);
  CHECK(srv.log().find("circuit breaker") == std::string::npos);
  check_still_serving(srv.port());
}

TEST_CASE("a hung worker is detected, its request retried elsewhere and the worker replaced",
          "[integration][faults][hang]") {
  server_process srv{write_temp_file(
    "hang.json", scale_config(R"(, "instances": 2, "max_batch_size": 1, "execution_timeout_ms": 300,
                                  "batching": {"max_queue_delay_us": 0})",
                              R"(, "fault_injection": true)"))};
  REQUIRE(eventually([&] { return ready_workers(srv.port()) >= 2; }, std::chrono::seconds(20)));
  REQUIRE(arm(srv.port(), R"({"model":"scale","worker":"scale/cpu/0","fault":"hang"})").status == 200);
  auto t0 = std::chrono::steady_clock::now();
  // Batches go round robin: one of two requests lands on scale/cpu/0, hangs there and is
  // answered by scale/cpu/1 after execution_timeout_ms.
  check_still_serving(srv.port());
  check_still_serving(srv.port());
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
  // The supervisor starts a replacement for the hung worker; both are ready again.
  http_client c{srv.port()};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::string t;
  while (std::chrono::steady_clock::now() < deadline) {
    t = c.get("/metrics").body;
    // (Both: the state reads "ready" too in the moment before the hang is handled.)
    if (series(t, R"(actorserve_worker_state{device="cpu",model="scale",worker="scale/cpu/0",state="ready"})") == 1
        && series(t, R"(actorserve_worker_restarts_total{device="cpu",model="scale",worker="scale/cpu/0"})") == 1)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(series(t, R"(actorserve_worker_state{device="cpu",model="scale",worker="scale/cpu/0",state="ready"})") == 1);
  CHECK(series(t, R"(actorserve_worker_restarts_total{device="cpu",model="scale",worker="scale/cpu/0"})") == 1);
  CHECK(srv.log().find("worker hung") != std::string::npos);
  for (int i = 0; i < 4; ++i)
    check_still_serving(srv.port());
}

TEST_CASE("failing batches open a worker's breaker and the model fails fast with 503",
          "[integration][faults][breaker]") {
  server_process srv{write_temp_file(
    "breaker.json", scale_config(R"(, "max_batch_size": 1, "retry": {"max_retries": 0},
                                     "breaker": {"failure_threshold": 2, "reset_timeout_ms": 400},
                                     "batching": {"max_queue_delay_us": 0})",
                                 R"(, "fault_injection": true)"))};
  REQUIRE(srv.wait_ready());
  REQUIRE(arm(srv.port(), R"({"model":"scale","fault":"throw","count":2})").status == 200);
  http_client c{srv.port()};
  CHECK(c.post("/v2/models/scale/infer", infer_body()).status == 500);
  CHECK(c.post("/v2/models/scale/infer", infer_body()).status == 500);
  auto r = c.post("/v2/models/scale/infer", infer_body());
  CHECK(r.status == 503);
  CHECK(r.headers["retry-after"] == "1");
  CHECK(error_of(r).find("open circuit breaker") != std::string::npos);
  std::this_thread::sleep_for(std::chrono::milliseconds(450));
  check_still_serving(srv.port()); // the probe succeeds and closes the breaker
  check_still_serving(srv.port());
  auto t = c.get("/metrics").body;
  CHECK(series(t, R"(actorserve_breaker_transitions_total{device="cpu",model="scale",worker="scale/cpu/0",to="open"})") == 1);
  CHECK(series(t, R"(actorserve_breaker_transitions_total{device="cpu",model="scale",worker="scale/cpu/0",to="closed"})") == 1);
}

namespace {

/// The pid of the newest process of isolated worker `name`, from the node's log (0 if none).
long isolated_pid(const std::string& log, const std::string& name) {
  auto key = "worker process " + name + " started (pid ";
  auto pos = log.rfind(key);
  return pos == std::string::npos ? 0 : std::stol(log.substr(pos + key.size()));
}

bool process_alive(long pid) {
  return pid > 0 && ::kill(static_cast<pid_t>(pid), 0) == 0;
}

} // namespace

TEST_CASE("isolated workers: a SIGKILLed one is replaced by a new process, a hung one is killed",
          "[integration][isolation]") {
  server_process srv{write_temp_file(
    "isolated.json",
    scale_config(R"(, "isolation": "process", "instances": 2, "execution_timeout_ms": 300)",
                 R"(, "fault_injection": true)"))};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  auto wait_for = [](const std::function<bool()>& condition) {
    return eventually(condition, std::chrono::seconds(15));
  };
  auto count = [&](const std::string& what) { return occurrences(srv.log(), what); };
  // (Both workers first: a kill before cpu/0 joined once would leave its count at 1 below.)
  REQUIRE(wait_for([&] {
    return count("worker scale/cpu/0 is ready") == 1 && count("worker scale/cpu/1 is ready") == 1;
  }));
  auto victim = isolated_pid(srv.log(), "scale/cpu/0");
  REQUIRE(process_alive(victim));
  REQUIRE(::kill(static_cast<pid_t>(victim), SIGKILL) == 0);
  check_still_serving(srv.port()); // the other worker answers meanwhile
  CHECK(wait_for([&] { return count("worker scale/cpu/0 is ready") == 2; }));
  auto replacement = isolated_pid(srv.log(), "scale/cpu/0");
  CHECK(replacement != victim);
  CHECK(process_alive(replacement));
  CHECK(srv.log().find("worker process scale/cpu/0 (pid " + std::to_string(victim)
                       + ") killed by signal 9") != std::string::npos);
  // A hang: the request is retried on the other worker; the stuck process is killed, not kept.
  auto r = c.post("/v2/admin/faults", R"({"model": "scale", "worker": "scale/cpu/1", "fault": "hang"})");
  REQUIRE(r.status == 200);
  auto stuck = isolated_pid(srv.log(), "scale/cpu/1");
  for (int i = 0; i < 4; ++i)
    check_still_serving(srv.port());
  CHECK(wait_for([&] { return !process_alive(stuck); }));
  CHECK(wait_for([&] { return count("worker scale/cpu/1 is ready") == 2; }));
  check_still_serving(srv.port());
  // Each process's batches show under its worker in the node's /metrics, and they add up to
  // the model's executed batches (the hung one's batch, never finished, counts nowhere).
  auto t = c.get("/metrics").body;
  auto worker_batches = [&](const std::string& w) {
    return series(t, R"(actorserve_batches_total{device="cpu",model="scale",worker=")" + w + "\"}");
  };
  auto doc = parse(c.get("/v2/models/scale/stats"));
  auto executed = doc["model_stats"].as_array().at(0).as_object()["execution_count"].to_number<double>();
  CHECK(worker_batches("scale/cpu/0") >= 1);
  CHECK(worker_batches("scale/cpu/0") + worker_batches("scale/cpu/1") == executed);
}

TEST_CASE("isolated workers take batch inputs through shared memory, a batch too large for it "
          "goes over the connection", "[integration][isolation]") {
  // 64 bytes of shared memory: one request of 4 floats fits, a batch of several does not.
  auto run = [](const std::string& shm) {
    server_process srv{write_temp_file(
      "shm" + shm + ".json",
      scale_config(R"(, "isolation": "process", "isolation_shm_bytes": )" + shm
                   + R"(, "batching": {"max_queue_delay_us": 50000})"))};
    REQUIRE(srv.wait_ready());
    REQUIRE(eventually([&] { return ready_workers(srv.port()) == 1; }, std::chrono::seconds(15)));
    // Alone (a batch of one), then 8 at once (one batch of up to 8): every answer its own.
    check_still_serving(srv.port());
    std::atomic<int> ok{0};
    std::vector<std::thread> clients;
    for (int i = 0; i < 8; ++i)
      clients.emplace_back([&, i] {
        auto v = std::to_string(i);
        auto r = http_client{srv.port()}.post("/v2/models/scale/infer",
                                              infer_body("", "[" + v + ",1,2," + v + "]"));
        auto want = std::to_string(2 * i + 1);
        if (r.status == 200 && r.body.find("[" + want + ",3,5," + want + "]") != std::string::npos)
          ++ok;
      });
    for (auto& t : clients)
      t.join();
    CHECK(ok == 8);
    check_still_serving(srv.port());
    return srv.log();
  };
  auto log = run("64");
  CHECK(occurrences(log, "worker scale/cpu/0 takes its batches' inputs through 64 bytes of shared "
                         "memory") == 1);
  CHECK(occurrences(log, "does not fit worker scale/cpu/0's shared memory") == 1); // said once
  log = run("0"); // off: every batch over the connection
  CHECK(occurrences(log, "shared memory") == 0);
}

TEST_CASE("HTTPS serves Triton's client and Python's over TLS, answers plaintext 400, refuses "
          "what the client CA did not sign and takes rotated certificate files",
          "[integration][tls]") {
  auto dir = make_certificates("https", {"ca", "rogue_ca"},
                               {{"server", "ca"}, {"client", "ca"}, {"rogue", "rogue_ca"},
                                {"rotated", "rogue_ca"}});
  // (server.http.tls, spliced into scale_config's http object)
  auto with_tls = [](const std::string& certificate, const std::string& key,
                     const std::string& client_ca) {
    auto config = scale_config();
    const std::string at = R"("max_body_bytes": 4096)";
    config.replace(config.find(at), at.size(),
                   at + R"(, "tls": {"certificate": ")" + certificate + R"(", "key": ")" + key
                     + "\"" + (client_ca.empty() ? "" : R"(, "client_ca": ")" + client_ca + "\"")
                     + "}");
    return config;
  };
  auto check = [&](const std::string& name, const std::string& client_ca, const std::string& mode) {
    server_process srv{write_temp_file(
      name + ".json", with_tls(dir + "/server.pem", dir + "/server.key", client_ca))};
    auto out = run_command({std::string(ACTORSERVE_SOURCE_DIR) + "/.venv/bin/python",
                            std::string(ACTORSERVE_SOURCE_DIR)
                              + "/tests/integration/python/https_test.py",
                            "127.0.0.1:" + std::to_string(srv.port()), dir, mode});
    INFO(out.second);
    INFO(srv.log());
    CHECK(out.first == 0);
    CHECK(out.second.find("https " + mode + ": ok") != std::string::npos);
  };
  check("https_plain", "", "plain-clients");
  check("https_mutual", dir + "/ca.pem", "client-certificates");

  // Certificate rotation: the files change under the running node (checked every 100 ms here).
  // A key alone that is not the certificate's is not taken (the old pair serves on); the new
  // pair is, for new connections.
  auto read = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  auto live_cert = write_temp_file("https_live/server.pem", read(dir + "/server.pem"));
  auto live_key = write_temp_file("https_live/server.key", read(dir + "/server.key"));
  auto rotating = with_tls(live_cert, live_key, "");
  rotating.replace(rotating.find(R"("key": ")"), 8, R"("reload_interval_ms": 100, "key": ")");
  server_process srv{write_temp_file("https_rotating.json", rotating)};
  auto served_by = [&](const std::string& ca) {
    return run_command({std::string(ACTORSERVE_SOURCE_DIR) + "/.venv/bin/python",
                        std::string(ACTORSERVE_SOURCE_DIR)
                          + "/tests/integration/python/https_test.py",
                        "127.0.0.1:" + std::to_string(srv.port()), dir, "served-by", ca})
             .first
           == 0;
  };
  CHECK(served_by("ca"));
  write_temp_file("https_live/server.key", read(dir + "/rotated.key"));
  eventually([&] { return srv.log().find("do not load") != std::string::npos; },
             std::chrono::seconds(5));
  CHECK(srv.log().find("TLS certificate files changed but do not load") != std::string::npos);
  CHECK(served_by("ca"));
  write_temp_file("https_live/server.pem", read(dir + "/rotated.pem"));
  eventually([&] { return served_by("rogue_ca"); }, std::chrono::seconds(10));
  CHECK(served_by("rogue_ca"));
  CHECK_FALSE(served_by("ca"));
  INFO(srv.log());
  CHECK(srv.log().find("TLS certificate files changed: new connections use them")
        != std::string::npos);

  // A key that is not the certificate's, or a certificate file that is not one, stops the start
  // naming the file.
  auto wrong = with_tls(dir + "/server.pem", dir + "/client.key", "");
  auto started = run_command({"timeout", "20", actorserve_binary(), "serve", "--config",
                              write_temp_file("https_bad.json", wrong), "--port", "0"});
  CHECK(started.first == 1);
  CHECK(started.second.find("server.http.tls.key: cannot use") != std::string::npos);
  auto not_pem = with_tls(dir + "/server.key", dir + "/server.key", "");
  started = run_command({"timeout", "20", actorserve_binary(), "serve", "--config",
                         write_temp_file("https_bad2.json", not_pem), "--port", "0"});
  CHECK(started.first == 1);
  CHECK(started.second.find("server.http.tls.certificate: cannot use") != std::string::npos);
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
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    http_client c{srv.port()};
    // A second load while the first runs is refused by name (503), and changes nothing.
    http_response second;
    std::thread again([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(60));
      http_client own{srv.port()};
      second = own.post("/v2/repository/models/" + name + "/load", "");
    });
    auto r = c.post("/v2/repository/models/" + name + "/load", "");
    again.join();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
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

TEST_CASE("isolated workers stay connected through idle periods between bursts of load",
          "[integration][isolation]") {
  // The node drops a connection silent for timeout_ms; the worker processes' heartbeats keep
  // theirs up while no batch crosses it. Short settings here stand for the defaults (500 ms
  // heartbeats, 3 s timeout): each idle period below is seven timeouts long.
  server_process srv{write_temp_file(
    "isolated_idle.json",
    scale_config(R"(, "isolation": "process", "instances": 2)",
                 R"(, "cluster": {"heartbeat_ms": 100, "timeout_ms": 300})"))};
  REQUIRE(srv.wait_ready());
  REQUIRE(eventually([&] { return ready_workers(srv.port()) == 2; }, std::chrono::seconds(15)));
  auto pids = [&] {
    return std::make_pair(isolated_pid(srv.log(), "scale/cpu/0"), isolated_pid(srv.log(), "scale/cpu/1"));
  };
  auto before = pids();
  for (int round = 0; round < 3; ++round) {
    std::this_thread::sleep_for(std::chrono::seconds(2)); // idle: nothing crosses the links
    INFO("after idle period " << round + 1);
    http_client c{srv.port()};
    CHECK(c.get("/v2/models/scale/ready").status == 200);
    for (int i = 0; i < 20; ++i) // a burst
      check_still_serving(srv.port());
    CHECK(ready_workers(srv.port()) == 2);
  }
  auto metrics = http_client{srv.port()}.get("/metrics").body;
  for (std::string w : {"scale/cpu/0", "scale/cpu/1"})
    CHECK(series(metrics, R"(actorserve_worker_restarts_total{device="cpu",model="scale",worker=")"
                            + w + "\"}")
          == 0);
  CHECK(pids() == before); // the same processes throughout
  CHECK(occurrences(srv.log(), "lost its node") == 0);
}
