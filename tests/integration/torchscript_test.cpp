// The real actorserve process serving the TorchScript MLP made by examples/models/make_models.py:
// outputs equal the model run directly in PyTorch, and concurrent requests are batched.
#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include <boost/json.hpp>

#include "support.hpp"
#include "torch_reference.hpp"

using namespace actorserve::itest;
namespace json = boost::json;

#if ACTORSERVE_HAVE_TORCH

namespace {

std::string mlp_config(const std::string& extra = "") {
  return R"({"server": {"http": {"port": 0}}, "models": [{"name": "mlp", "backend": "torchscript",
    "path": ")" + models_dir() + R"(/mlp.pt", "max_batch_size": 64,
    "inputs": [{"name": "input", "datatype": "FP32", "dims": [64]}],
    "outputs": [{"name": "logits", "datatype": "FP32", "dims": [10]}],
    "warmup": {"batch_sizes": [1, 8]})" + extra + "}]}";
}

} // namespace


TEST_CASE("MLP outputs over HTTP equal the model run directly in PyTorch", "[integration][torch]") {
  server_process srv{write_temp_file("mlp.json", mlp_config())};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  auto ref = reference();
  auto& inputs = ref["input"].as_array();
  auto& logits = ref["logits"].as_array();

  // One row per request, JSON in and out.
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    auto body = R"({"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":)"
                + json::serialize(inputs[i]) + "}]}";
    auto r = c.post("/v2/models/mlp/infer", body);
    REQUIRE(r.status == 200);
    auto doc = json::parse(r.body).as_object();
    auto& out = doc["outputs"].as_array()[0].as_object();
    CHECK(json::serialize(out["shape"]) == "[1,10]");
    check_close(flatten(out["data"]), flatten(logits[i]));
  }

  // All rows in one request, binary in and out.
  std::vector<float> all;
  for (auto v : flatten(ref["input"]))
    all.push_back(static_cast<float>(v));
  auto rows = std::to_string(inputs.size());
  std::string header = R"({"inputs":[{"name":"input","shape":[)" + rows
                       + R"(,64],"datatype":"FP32","parameters":{"binary_data_size":)"
                       + std::to_string(all.size() * 4) + R"(}}],"parameters":{"binary_data_output":true}})";
  auto r = c.post("/v2/models/mlp/infer",
                  header + std::string(reinterpret_cast<const char*>(all.data()), all.size() * 4),
                  {{"Inference-Header-Content-Length", std::to_string(header.size())}});
  REQUIRE(r.status == 200);
  auto len = std::stoul(r.headers["inference-header-content-length"]);
  std::vector<float> out((r.body.size() - len) / 4);
  std::memcpy(out.data(), r.body.data() + len, out.size() * 4);
  check_close(std::vector<double>(out.begin(), out.end()), flatten(ref["logits"]));
}

TEST_CASE("raw uint8 images are resized and normalized by the server as PyTorch does it",
          "[integration][torch][preprocess]") {
  auto ref = reference("convnet");
  auto config = R"({"server": {"http": {"port": 0}}, "models": [{"name": "convnet",
    "backend": "torchscript", "path": ")" + models_dir() + R"(/convnet.pt", "max_batch_size": 4,
    "inputs": [{"name": "image", "datatype": "UINT8", "dims": [32, 32, 3]}],
    "outputs": [{"name": "logits", "datatype": "FP32", "dims": [10]}],
    "preprocess": {"resize": [24, 24], "mean": )" + json::serialize(ref["mean"]) + R"(,
                   "std": )" + json::serialize(ref["std"]) + R"(}},
    {"name": "any_size", "backend": "torchscript", "path": ")" + models_dir() + R"(/convnet.pt",
     "max_batch_size": 4, "inputs": [{"name": "image", "datatype": "UINT8", "dims": [-1, -1, 3]}],
     "outputs": [{"name": "logits", "datatype": "FP32", "dims": [10]}],
     "preprocess": {"resize": [24, 24]}}]})";
  server_process srv{write_temp_file("convnet.json", config)};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  auto body = R"({"inputs":[{"name":"image","shape":[2,32,32,3],"datatype":"UINT8","data":)"
              + json::serialize(ref["image"]) + "}]}";
  auto r = c.post("/v2/models/convnet/infer", body);
  REQUIRE(r.status == 200);
  auto doc = json::parse(r.body).as_object();
  auto& out = doc["outputs"].as_array()[0].as_object();
  CHECK(json::serialize(out["shape"]) == "[2,10]");
  check_close(flatten(out["data"]), flatten(ref["logits"]));
  // The raw image is what the model declares: a preprocessed float tensor is refused.
  auto wrong = c.post("/v2/models/convnet/infer",
                      R"({"inputs":[{"name":"image","shape":[1,3,24,24],"datatype":"FP32",)"
                      R"("data":[0]}]})");
  CHECK(wrong.status == 400);
  CHECK(wrong.body.find("image") != std::string::npos);
  // Images of any size are resized; an empty one is refused (it crashed the node once).
  for (auto [h, w] : {std::pair{0, 0}, std::pair{0, 5}, std::pair{7, 0}}) {
    auto empty = c.post("/v2/models/any_size/infer",
                        R"({"inputs":[{"name":"image","shape":[1,)" + std::to_string(h) + ","
                          + std::to_string(w) + R"(,3],"datatype":"UINT8","data":[]}]})");
    CHECK(empty.status == 400);
    CHECK(empty.body.find("an image must be at least 1x1 pixels") != std::string::npos);
  }
  std::string pixels = "0";
  for (int i = 1; i < 5 * 7 * 3; ++i)
    pixels += "," + std::to_string(i % 256);
  auto small = c.post("/v2/models/any_size/infer",
                      R"({"inputs":[{"name":"image","shape":[1,5,7,3],"datatype":"UINT8","data":[)"
                        + pixels + "]}]}");
  CHECK(small.status == 200);
  CHECK(srv.running());
}

TEST_CASE("32 concurrent MLP requests are served in batches larger than one, in process and "
          "by an isolated worker", "[integration][torch]") {
  // "process": the worker in its own process, batch inputs through shared memory.
  auto isolation = GENERATE(as<std::string>{}, "none", "process");
  INFO("isolation: " << isolation);
  server_process srv{write_temp_file(
    "mlp_batching_" + isolation + ".json",
    mlp_config(R"(, "batching": {"max_queue_delay_us": 5000}, "isolation": ")" + isolation + "\""))};
  REQUIRE(srv.wait_ready());
  auto ref = reference();
  auto row = json::serialize(ref["input"].as_array()[0]);
  auto want = flatten(ref["logits"].as_array()[0]);
  std::atomic<int> max_batch{0};
  std::vector<std::vector<double>> got(32);
  std::mutex mtx;
  std::vector<std::string> failures;
  std::vector<std::thread> clients;
  for (int i = 0; i < 32; ++i)
    clients.emplace_back([&, i] {
      http_client c{srv.port()};
      auto r = c.post("/v2/models/mlp/infer",
                      R"({"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":)" + row + "}]}");
      if (r.status != 200) {
        std::lock_guard<std::mutex> guard{mtx};
        failures.push_back(std::to_string(r.status) + " " + r.body + r.error);
        return;
      }
      auto doc = json::parse(r.body).as_object();
      got[i] = flatten(doc["outputs"].as_array()[0].as_object()["data"]);
      int size = static_cast<int>(doc["parameters"].as_object()["batch_requests"].as_int64());
      int prev = max_batch.load();
      while (size > prev && !max_batch.compare_exchange_weak(prev, size)) {
      }
    });
  for (auto& t : clients)
    t.join();
  CHECK(failures.empty());
  for (auto& f : failures)
    WARN(f);
  for (auto& g : got)
    check_close(g, want); // batched results equal the single-row reference
  CHECK(max_batch > 1);
}

TEST_CASE("a TorchScript file that cannot be loaded keeps the model not ready",
          "[integration][torch]") {
  auto bogus = write_temp_file("bogus.pt", "not a model");
  auto cfg = R"({"server": {"http": {"port": 0}}, "models": [{"name": "broken", "backend": "torchscript",
    "path": ")" + bogus + R"(", "max_batch_size": 4,
    "inputs": [{"name": "input", "datatype": "FP32", "dims": [4]}],
    "outputs": [{"name": "out", "datatype": "FP32", "dims": [4]}],
    "restart": {"max_restarts": 1, "backoff_initial_ms": 10}}]})";
  server_process srv{write_temp_file("broken.json", cfg)};
  http_client c{srv.port()};
  eventually([&] { return srv.log().find("giving up on worker broken/cpu/0") != std::string::npos; },
             std::chrono::seconds(10));
  CHECK(srv.log().find("cannot load TorchScript file") != std::string::npos);
  CHECK(c.get("/v2/models/broken/ready").status == 503);
  auto r = c.post("/v2/models/broken/infer",
                  R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]})");
  CHECK(r.status == 503);
  auto index = c.post("/v2/repository/index", "");
  CHECK(index.status == 200);
  CHECK(index.body.find(R"({"name":"broken","version":"1","state":"UNAVAILABLE","reason":)")
        != std::string::npos);
  CHECK(c.post("/v2/repository/index", R"({"ready": true})").body == "[]");
}

TEST_CASE("a reload with a model file that does not load keeps the other workers serving the "
          "model as loaded, and one with the file fixed brings every worker back",
          "[integration][torch][control]") {
  std::ifstream in(models_dir() + "/mlp.pt", std::ios::binary);
  REQUIRE(in);
  std::stringstream good;
  good << in.rdbuf();
  auto path = write_temp_file("reload_mlp.pt", good.str());
  auto cfg = R"({"server": {"http": {"port": 0}}, "models": [{"name": "mlp", "backend": "torchscript",
    "path": ")" + path + R"(", "max_batch_size": 64, "instances": 2,
    "inputs": [{"name": "input", "datatype": "FP32", "dims": [64]}],
    "outputs": [{"name": "logits", "datatype": "FP32", "dims": [10]}],
    "restart": {"backoff_initial_ms": 10}}]})";
  server_process srv{write_temp_file("reload_mlp.json", cfg)};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  auto ref = reference();
  auto body = R"({"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":)"
              + json::serialize(ref["input"].as_array()[0]) + "}]}";
  auto served = [&] {
    auto r = c.post("/v2/models/mlp/infer", body);
    REQUIRE(r.status == 200);
    auto doc = json::parse(r.body).as_object();
    check_close(flatten(doc["outputs"].as_array()[0].as_object()["data"]),
                flatten(ref["logits"].as_array()[0]));
  };
  auto ready_workers = [&] {
    auto metrics = c.get("/metrics").body;
    double n = 0;
    for (std::string w : {"mlp/cpu/0", "mlp/cpu/1"})
      n += series(metrics, R"(actorserve_worker_state{device="cpu",model="mlp",worker=")" + w
                             + R"(",state="ready"})");
    return n;
  };
  served();
  CHECK(ready_workers() == 2);

  // The file is broken, then a load: the first worker reloaded does not come back and is kept
  // down (its restarts cannot escalate and take the other down); the other serves as before.
  write_temp_file("reload_mlp.pt", "not a model");
  auto r = c.post("/v2/repository/models/mlp/load", "");
  CHECK(r.status == 500);
  CHECK(r.body.find("did not come back from its reload") != std::string::npos);
  CHECK(r.body.find("It is kept down; 1 worker(s) serve the model as before") != std::string::npos);
  CHECK(c.get("/v2/models/mlp/ready").status == 200);
  for (int i = 0; i < 5; ++i)
    served();
  CHECK(ready_workers() == 1);
  CHECK(srv.log().find("cannot load TorchScript file") != std::string::npos);

  // Fixed: a load brings the worker kept down back first, then reloads the other.
  write_temp_file("reload_mlp.pt", good.str());
  r = c.post("/v2/repository/models/mlp/load", "");
  CHECK(r.status == 200);
  CHECK(r.body == R"({"name":"mlp","state":"READY"})");
  CHECK(ready_workers() == 2);
  CHECK(srv.log().find("(it was down)") != std::string::npos);
  served();
}

TEST_CASE("when the root supervisor gives up the process exits with status 1",
          "[integration][torch]") {
  // A model that cannot load, restarted by nobody: its failure escalates through the workers
  // and model supervisors to the root, whose intensity is 0.
  auto bogus = write_temp_file("bogus_root.pt", "not a model");
  auto cfg = R"({"server": {"http": {"port": 0, "drain_timeout_ms": 600000},
      "supervision": {"max_restarts": 0, "model_restart": "permanent"}},
    "models": [{"name": "broken", "backend": "torchscript", "path": ")" + bogus + R"(",
    "max_batch_size": 4, "inputs": [{"name": "input", "datatype": "FP32", "dims": [4]}],
    "outputs": [{"name": "out", "datatype": "FP32", "dims": [4]}],
    "restart": {"max_restarts": 0, "model_max_restarts": 0, "backoff_initial_ms": 10}}]})";
  server_process srv{write_temp_file("broken_root.json", cfg)};
  CHECK(eventually([&] { return !srv.running(); }, std::chrono::seconds(20)));
  INFO(srv.log());
  CHECK(srv.stop() == 1);
  CHECK(srv.log().find("the root supervisor stopped") != std::string::npos);
}

TEST_CASE("NVIDIA Triton's Python HTTP client works against actorserve", "[integration][torch]") {
  auto config = mlp_config();
  config.replace(config.find("\"port\": 0}"), 10, R"("port": 0, "allow_shared_memory": true})");
  std::string labels;
  for (int i = 0; i < 10; ++i)
    labels += "class" + std::to_string(i) + "\n";
  const std::string logits_dims = R"("dims": [10]})";
  config.replace(config.find(logits_dims), logits_dims.size(),
                 R"("dims": [10], "labels": ")" + write_temp_file("mlp_labels.txt", labels) + "\"}");
  server_process srv{write_temp_file("mlp_triton.json", config)};
  REQUIRE(srv.wait_ready());
  auto out = run_command({std::string(ACTORSERVE_SOURCE_DIR) + "/.venv/bin/python",
                          std::string(ACTORSERVE_SOURCE_DIR)
                            + "/tests/integration/python/triton_client_test.py",
                          "127.0.0.1:" + std::to_string(srv.port()),
                          models_dir() + "/mlp_reference.json"});
  INFO(out.second);
  CHECK(out.first == 0);
  CHECK(out.second.find("triton client: ok") != std::string::npos);
}

#else

TEST_CASE("TorchScript integration tests", "[integration][torch]") {
  WARN("SKIPPED: built without the TorchScript backend (ACTORSERVE_WITH_TORCH=OFF)");
}

#endif
