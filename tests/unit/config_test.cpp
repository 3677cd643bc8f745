#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "runtime/config.hpp"
#include "runtime/error.hpp"

using namespace actorserve;

namespace {

const std::vector<std::string> backends{"scale", "torchscript"};

std::string model_json(const std::string& extra = "") {
  return R"({"name": "m", "backend": "scale", "max_batch_size": 8,
             "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
             "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]}])"
         + extra + "}";
}

std::string deployment(const std::string& model, const std::string& server = "") {
  return "{" + (server.empty() ? "" : "\"server\": " + server + ", ") + "\"models\": [" + model
         + "]}";
}

/// Parses and returns the error text ("" when valid).
std::string errors_of(const std::string& text) {
  auto cfg = parse_deployment(text, "", backends);
  return cfg ? "" : error_message(cfg.error());
}

} // namespace

TEST_CASE("a minimal deployment gets the documented defaults", "[config]") {
  auto cfg = parse_deployment(deployment(model_json()), "", backends);
  REQUIRE(cfg);
  CHECK(cfg->server.http.address == "127.0.0.1");
  CHECK(cfg->server.http.port == 8000);
  CHECK(cfg->server.http.io_threads == 2);
  CHECK(cfg->server.fault_injection == false);
  REQUIRE(cfg->models.size() == 1);
  auto& m = cfg->models[0];
  CHECK(m.version == "1");
  CHECK(m.devices == std::vector<std::string>{"cpu"});
  CHECK(m.instances == 1);
  CHECK(m.batching.max_queue_delay_us == 1000);
  CHECK(m.batching.max_queue_size == 1024);
  CHECK(m.warmup.batch_sizes == std::vector<uint32_t>{1});
  CHECK(m.restart.max_restarts == 5);
  CHECK(m.default_timeout_us == 10'000'000);
  CHECK(m.inputs[0].dims == std::vector<int64_t>{4});
  CHECK(m.inputs[0].dtype == datatype::FP32);
}

TEST_CASE("config errors name the JSON path and the bound", "[config]") {
  CHECK(errors_of(deployment(model_json(R"(, "batching": {"max_queue_size": 0})")))
        == "models[0].batching.max_queue_size: must be >= 1, got 0");
  CHECK(errors_of(deployment(model_json(R"(, "instances": 0)")))
        == "models[0].instances: must be >= 1, got 0");
  CHECK(errors_of(deployment(model_json(R"(, "batching": {"max_queue_delay_us": "5ms"})")))
        == "models[0].batching.max_queue_delay_us: expected an integer, got \"5ms\"");
}

TEST_CASE("config rejects unknown keys at every level", "[config]") {
  CHECK(errors_of(R"({"models": [)" + model_json() + R"(], "modles": []})")
        == "modles: unknown key");
  CHECK(errors_of(deployment(model_json(R"(, "batchng": {})")))
        == "models[0].batchng: unknown key");
  CHECK(errors_of(deployment(model_json(), R"({"http": {"prot": 1}})"))
        == "server.http.prot: unknown key");
}

TEST_CASE("config rejects wrong types and missing required keys", "[config]") {
  CHECK(errors_of(deployment(model_json(), R"({"fault_injection": "yes"})"))
        == "server.fault_injection: expected true or false, got \"yes\"");
  CHECK(errors_of(R"({"models": [{"backend": "scale", "inputs": [], "outputs": 3}]})")
        == "models[0].name: required key is missing\n"
           "models[0].inputs: must list at least one tensor\n"
           "models[0].outputs: expected an array, got 3");
  CHECK(errors_of("{}") == "models: required key is missing");
  CHECK(errors_of("[]") == "(root): expected an object, got an array");
  CHECK(errors_of(R"({"models": []})") == "models: must list at least one model");
}

TEST_CASE("config checks datatypes, dims, devices and names", "[config]") {
  auto bad_tensor = R"({"name": "m", "backend": "scale",
    "inputs": [{"name": "x", "datatype": "FLOAT", "dims": [0, -2]}],
    "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]}], "devices": ["gpu0"]})";
  CHECK(errors_of(deployment(bad_tensor))
        == "models[0].inputs[0].datatype: expected one of BOOL, UINT8, INT8, INT16, INT32, INT64, "
           "FP16, FP32, FP64, got \"FLOAT\"\n"
           "models[0].inputs[0].dims[0]: must be -1 (variable) or >= 1, got 0\n"
           "models[0].inputs[0].dims[1]: must be >= -1, got -2\n"
           "models[0].devices[0]: expected \"cpu\" or \"cuda:N\", got \"gpu0\"");
  CHECK(errors_of(deployment(model_json() + "," + model_json()))
        == "models[1].name: duplicate model name \"m\"");
}

TEST_CASE("config rejects an unknown backend and lists the compiled-in ones", "[config]") {
  auto text = deployment(R"({"name": "m", "backend": "onnx",
    "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
    "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]}]})");
  CHECK(errors_of(text)
        == "models[0].backend: unknown backend \"onnx\"; compiled-in backends: scale, torchscript");
}

TEST_CASE("config checks cross-field bounds", "[config]") {
  CHECK(errors_of(deployment(model_json(R"(, "batching": {"preferred_batch_sizes": [4, 16]})")))
        == "models[0].batching.preferred_batch_sizes[1]: must be <= max_batch_size (8), got 16");
  CHECK(errors_of(deployment(model_json(R"(, "warmup": {"batch_sizes": [9]})")))
        == "models[0].warmup.batch_sizes[0]: must be <= max(max_batch_size, 1) (8), got 9");
  CHECK(errors_of(deployment(model_json(R"(, "default_timeout_us": 100, "max_timeout_us": 50)")))
        == "models[0].default_timeout_us: must be <= max_timeout_us (50), got 100");
  CHECK(errors_of(deployment(model_json(R"(, "restart": {"backoff_initial_ms": 500, "backoff_max_ms": 100})")))
        == "models[0].restart.backoff_max_ms: must be >= backoff_initial_ms (500), got 100");
  CHECK(errors_of(deployment(model_json(), R"({"http": {"port": 70000}})"))
        == "server.http.port: must be <= 65535, got 70000");
  CHECK(errors_of(deployment(model_json(), R"({"log_level": "loud"})"))
        == "server.log_level: expected one of trace, debug, info, warn, error, off, got \"loud\"");
}

TEST_CASE("config reports text that is not JSON", "[config]") {
  auto err = errors_of("{\"models\": [");
  CHECK(err.rfind("(root): not valid JSON", 0) == 0);
}

TEST_CASE("model paths resolve against the deployment file's folder and must exist", "[config]") {
  auto dir = std::filesystem::temp_directory_path() / "actorserve_config_test";
  std::filesystem::create_directories(dir / "models");
  std::ofstream(dir / "models" / "m.pt") << "x";
  std::ofstream(dir / "deploy.json")
    << deployment(model_json(R"(, "path": "models/m.pt", "parameters": {"factor": 2, "mode": "fast"})"));
  auto cfg = load_deployment((dir / "deploy.json").string(), backends);
  REQUIRE(cfg);
  CHECK(cfg->models[0].path == (dir / "models" / "m.pt").string());
  CHECK(cfg->models[0].parameters.at("factor") == "2");
  CHECK(cfg->models[0].parameters.at("mode") == "fast");
  std::ofstream(dir / "bad.json") << deployment(model_json(R"(, "path": "models/missing.pt")"));
  auto bad = load_deployment((dir / "bad.json").string(), backends);
  REQUIRE_FALSE(bad);
  CHECK(error_message(bad.error())
        == "models[0].path: no such file: \"" + (dir / "models" / "missing.pt").string() + "\"");
  auto none = load_deployment((dir / "nope.json").string(), backends);
  REQUIRE_FALSE(none);
  CHECK(error_code(none.error()) == errc::invalid_config);
  std::filesystem::remove_all(dir);
}

TEST_CASE("config checks the scheduler policy", "[config]") {
  auto cfg = parse_deployment(deployment(model_json(), R"({"scheduler_policy": "stealing"})"), "", backends);
  REQUIRE(cfg);
  CHECK(cfg->server.scheduler_policy == "stealing");
  CHECK(parse_deployment(deployment(model_json()), "", backends)->server.scheduler_policy == "sharing");
  CHECK(errors_of(deployment(model_json(), R"({"scheduler_policy": "fifo"})"))
        == "server.scheduler_policy: expected \"sharing\" or \"stealing\", got \"fifo\"");
}

TEST_CASE("config checks the log format", "[config]") {
  CHECK(errors_of(deployment(model_json(), R"({"log_format": "xml"})"))
        == "server.log_format: expected \"text\" or \"json\", got \"xml\"");
  CHECK(parse_deployment(deployment(model_json(), R"({"log_format": "json"})"), "", backends));
}

TEST_CASE("config reads retry, breaker and hang-detection settings", "[config]") {
  auto cfg = parse_deployment(
    deployment(model_json(R"(, "retry": {"max_retries": 0}, "execution_timeout_ms": 0,
                             "breaker": {"failure_threshold": 5, "reset_timeout_ms": 10, "max_reset_timeout_ms": 20})")),
    "", backends);
  REQUIRE(cfg);
  CHECK(cfg->models[0].max_retries == 0);
  CHECK(cfg->models[0].execution_timeout_ms == 0);
  CHECK(cfg->models[0].breaker.failure_threshold == 5);
  CHECK(errors_of(deployment(model_json(R"(, "breaker": {"reset_timeout_ms": 50, "max_reset_timeout_ms": 20})")))
        == "models[0].breaker.max_reset_timeout_ms: must be >= reset_timeout_ms (50), got 20");
  CHECK(errors_of(deployment(model_json(R"(, "retry": {"max_retries": 11})")))
        == "models[0].retry.max_retries: must be <= 10, got 11");
}
