// The "aoti" backend (runtime/backends/aoti) serving the AOTInductor packages make_models.py
// --aoti makes: outputs equal to the models run directly in PyTorch (the MLP, the CNN), a batch
// below a package's compiled size padded to it, and packages that do not match their
// declaration refused at start with the difference named.
#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include "support.hpp"
#include "torch_reference.hpp"

using namespace actorserve::itest;
namespace json = boost::json;

#if ACTORSERVE_HAVE_TORCH

namespace {

std::string aoti_model(const std::string& name, const std::string& file, const std::string& in,
                       const std::string& out, const std::string& extra = "") {
  return R"({"name": ")" + name + R"(", "backend": "aoti", "path": ")" + models_dir() + "/" + file
         + R"(", "inputs": [{"name": "input", "datatype": "FP32", "dims": )" + in + R"(}],
    "outputs": [{"name": "logits", "datatype": "FP32", "dims": )" + out + R"(}],
    "restart": {"max_restarts": 0}, "warmup": {"batch_sizes": [1, 4]})" + extra + "}";
}

std::string config(const std::vector<std::string>& models) {
  std::string list;
  for (auto& m : models)
    list += (list.empty() ? "" : ",") + m;
  return R"({"server": {"http": {"port": 0}}, "models": [)" + list + "]}";
}

/// POSTs `rows` rows of `data` (JSON numbers) to `model` and returns its logits.
std::vector<double> infer(http_client& c, const std::string& model, const std::string& shape,
                          const json::value& data) {
  auto r = c.post("/v2/models/" + model + "/infer",
                  R"({"inputs":[{"name":"input","shape":)" + shape
                    + R"(,"datatype":"FP32","data":)" + json::serialize(data) + "}]}");
  INFO(r.body);
  REQUIRE(r.status == 200);
  auto doc = json::parse(r.body).as_object();
  return flatten(doc["outputs"].as_array()[0].as_object()["data"]);
}

} // namespace

TEST_CASE("aoti: the MLP and the CNN as AOTInductor packages answer as PyTorch does, a batch "
          "below a package's compiled size padded to it",
          "[integration][torch][aoti]") {
  server_process srv{write_temp_file(
    "aoti.json", config({aoti_model("mlp", "mlp.pt2", "[64]", "[10]", R"(, "max_batch_size": 64)"),
                         aoti_model("mlp_b8", "mlp_b8.pt2", "[64]", "[10]", R"(, "max_batch_size": 8)"),
                         aoti_model("convnet", "convnet.pt2", "[3, 24, 24]", "[10]",
                                    R"(, "max_batch_size": 16)")}))};
  REQUIRE(srv.wait_ready(std::chrono::seconds(60))); // (three packages to load, under sanitizers)
  http_client c{srv.port()};
  auto mlp = reference("mlp");
  auto& rows = mlp["input"].as_array();
  auto& logits = mlp["logits"].as_array();
  for (std::size_t i = 0; i < rows.size(); ++i) { // one row a request
    INFO("row " << i);
    check_close(infer(c, "mlp", "[1,64]", json::array{rows[i]}), flatten(logits[i]));
  }
  check_close(infer(c, "mlp", "[8,64]", rows), flatten(logits)); // all rows at once
  // Compiled for batch 8 only: 1 and 3 rows are padded to 8, the padding's outputs dropped.
  check_close(infer(c, "mlp_b8", "[1,64]", json::array{rows[0]}), flatten(logits[0]));
  json::array three{rows[0], rows[1], rows[2]};
  json::array three_out{logits[0], logits[1], logits[2]};
  check_close(infer(c, "mlp_b8", "[3,64]", three), flatten(three_out));
  check_close(infer(c, "mlp_b8", "[8,64]", rows), flatten(logits));
  auto convnet = reference("convnet");
  check_close(infer(c, "convnet", "[2,3,24,24]", convnet["input"]), flatten(convnet["logits"]));
}

TEST_CASE("aoti: a package that does not match its declaration is refused at start, naming what "
          "differs",
          "[integration][torch][aoti]") {
  server_process srv{write_temp_file(
    "aoti_bad.json",
    config({aoti_model("wrong_input", "mlp.pt2", "[32]", "[10]", R"(, "max_batch_size": 8)"),
            aoti_model("wrong_output", "mlp.pt2", "[64]", "[12]", R"(, "max_batch_size": 8)"),
            aoti_model("too_large", "mlp.pt2", "[64]", "[10]", R"(, "max_batch_size": 128)"),
            aoti_model("good", "mlp.pt2", "[64]", "[10]", R"(, "max_batch_size": 8)")}))};
  http_client c{srv.port()};
  REQUIRE(eventually([&] {
    auto log = srv.log();
    return log.find("supervisor 'workers wrong_input' gave up") != std::string::npos
           && log.find("supervisor 'workers wrong_output' gave up") != std::string::npos
           && log.find("supervisor 'workers too_large' gave up") != std::string::npos;
  }, std::chrono::seconds(60)));
  auto log = srv.log();
  INFO(log);
  CHECK(log.find("model 'wrong_input': input 0 ('input') is declared [32]; package '")
        != std::string::npos);
  CHECK(log.find("mlp.pt2' was compiled for [64]") != std::string::npos);
  CHECK(log.find("model 'wrong_output': output 0 ('logits') of package '") != std::string::npos);
  CHECK(log.find("is Float [1, 10] for a batch of 1; declared FP32 [1, 12]") != std::string::npos);
  CHECK(log.find("model 'too_large': max_batch_size 128 exceeds the batch sizes the package was "
                 "compiled for (1..64)") != std::string::npos);
  for (auto m : {"wrong_input", "wrong_output", "too_large"})
    CHECK(c.get(std::string("/v2/models/") + m + "/ready").status == 503);
  // (the others do not stop it; it may still be warming up when they have given up)
  CHECK(eventually([&] { return c.get("/v2/models/good/ready").status == 200; },
                   std::chrono::seconds(30)));
}

TEST_CASE("aoti: packages that workers load at the same time each keep their own metadata",
          "[integration][torch][aoti]") {
  // (libtorch's loader parses every package's metadata into one static object: aoti_backend.cpp)
  std::vector<std::string> models;
  for (int i = 0; i < 5; ++i) {
    models.push_back(aoti_model("any_" + std::to_string(i), "mlp.pt2", "[64]", "[10]",
                                R"(, "max_batch_size": 64)"));
    models.push_back(aoti_model("eight_" + std::to_string(i), "mlp_b8.pt2", "[64]", "[10]",
                                R"(, "max_batch_size": 8)"));
  }
  server_process srv{write_temp_file("aoti_many.json", config(models))};
  REQUIRE(srv.wait_ready(std::chrono::seconds(60)));
  auto log = srv.log();
  INFO(log);
  // A package read with the other's metadata fails its worker's start (a batch range of 8..8
  // for max_batch_size 64, or a batch of 1 run on the package compiled for 8 only).
  CHECK(log.find("failed to start") == std::string::npos);
  http_client c{srv.port()};
  auto mlp = reference("mlp");
  auto& rows = mlp["input"].as_array();
  for (int i = 0; i < 5; ++i) {
    INFO("model " << i);
    check_close(infer(c, "any_" + std::to_string(i), "[1,64]", json::array{rows[0]}),
                flatten(mlp["logits"].as_array()[0]));
    check_close(infer(c, "eight_" + std::to_string(i), "[1,64]", json::array{rows[0]}),
                flatten(mlp["logits"].as_array()[0]));
  }
}

#else

TEST_CASE("aoti integration tests", "[integration][torch][aoti]") {
  WARN("SKIPPED: built without the libtorch backends (ACTORSERVE_WITH_TORCH=OFF)");
}

#endif
