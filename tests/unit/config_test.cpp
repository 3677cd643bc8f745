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
  CHECK(cfg->server.http.drain_timeout_ms == 20'000);
  CHECK(cfg->server.http.max_inflight_body_bytes == 2ull << 30);
  CHECK(cfg->server.http.compression_level == 1);
  CHECK(cfg->server.http.compression_min_bytes == 1024);
  CHECK(cfg->server.fault_injection == false);
  REQUIRE(cfg->models.size() == 1);
  auto& m = cfg->models[0];
  CHECK(m.version == "1");
  CHECK(m.devices == std::vector<std::string>{"cpu"});
  CHECK(m.instances == 1);
  CHECK(m.batching.max_queue_delay_us == 1000);
  CHECK(m.batching.max_queue_size == 1024);
  CHECK(m.batching.stage_ahead);
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
  CHECK(errors_of(deployment(model_json(R"(, "batching": {"stage_ahead": 1})")))
        == "models[0].batching.stage_ahead: expected true or false, got 1");
  CHECK(errors_of(deployment(model_json(), R"({"http": {"drain_timeout_ms": 3600001}})"))
        == "server.http.drain_timeout_ms: must be <= 3600000, got 3600001");
  CHECK(errors_of(deployment(model_json(), R"({"http": {"max_body_bytes": 4096,
                                                         "max_inflight_body_bytes": 2048}})"))
        == "server.http.max_inflight_body_bytes: must be >= max_body_bytes (4096), got 2048");
  CHECK(errors_of(deployment(model_json(), R"({"http": {"compression_level": 10}})"))
        == "server.http.compression_level: must be <= 9, got 10");
  CHECK(errors_of(deployment(model_json(R"(, "batching": {"priority_levels": 2,
                                                          "default_priority_level": 3})")))
        == "models[0].batching.default_priority_level: must be <= priority_levels (2), got 3");
  auto levels = parse_deployment(deployment(model_json(R"(, "batching": {"priority_levels": 3})")),
                                 "", backends);
  REQUIRE(levels);
  CHECK(levels->models[0].batching.default_priority_level == 3); // (the lowest, unless set)
  auto off = parse_deployment(deployment(model_json(R"(, "batching": {"stage_ahead": false})")), "",
                              backends);
  REQUIRE(off);
  CHECK_FALSE(off->models[0].batching.stage_ahead);
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
           "FP16, FP32, FP64 or BYTES, got \"FLOAT\"\n"
           "models[0].inputs[0].dims[0]: must be -1 (variable) or >= 1, got 0\n"
           "models[0].inputs[0].dims[1]: must be >= -1, got -2\n"
           "models[0].devices[0]: expected \"cpu\", \"cuda:N\" or \"all\", got \"gpu0\"");
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
  // A folder, or a name the system refuses (it threw out of check-config and ended it), are
  // errors of the deployment too.
  std::ofstream(dir / "bad.json") << deployment(model_json(R"(, "path": "models")"));
  bad = load_deployment((dir / "bad.json").string(), backends);
  REQUIRE_FALSE(bad);
  CHECK(error_message(bad.error())
        == "models[0].path: \"" + (dir / "models").string() + "\" is a folder, not a file");
  std::ofstream(dir / "bad.json") << deployment(model_json(R"(, "path": ")" + std::string(5000, 'a') + "\""));
  bad = load_deployment((dir / "bad.json").string(), backends);
  REQUIRE_FALSE(bad);
  CHECK(error_message(bad.error()).find("File name too long") != std::string::npos);
  auto none = load_deployment((dir / "nope.json").string(), backends);
  REQUIRE_FALSE(none);
  CHECK(error_code(none.error()) == errc::invalid_config);
  std::filesystem::remove_all(dir);
}

TEST_CASE("config checks the scheduler policy", "[config]") {
  auto cfg = parse_deployment(deployment(model_json(), R"({"scheduler_policy": "stealing"})"), "", backends);
  REQUIRE(cfg);
  CHECK(cfg->server.scheduler_policy == caf_scheduler::stealing);
  CHECK(parse_deployment(deployment(model_json()), "", backends)->server.scheduler_policy == caf_scheduler::sharing);
  CHECK(errors_of(deployment(model_json(), R"({"scheduler_policy": "fifo"})"))
        == "server.scheduler_policy: expected \"sharing\" or \"stealing\", got \"fifo\"");
}

TEST_CASE("server.supervision: a crash-loop back-off of 10 s to 5 min unless set, 0 turns it off",
          "[config]") {
  auto cfg = parse_deployment(deployment(model_json()), "", backends);
  REQUIRE(cfg);
  CHECK(cfg->server.supervision.model_cooldown_ms == 10'000);
  CHECK(cfg->server.supervision.model_cooldown_max_ms == 300'000);
  auto off = parse_deployment(deployment(model_json(), R"({"supervision": {"model_cooldown_ms": 0}})"),
                              "", backends);
  REQUIRE(off);
  CHECK(off->server.supervision.model_cooldown_ms == 0);
  CHECK(errors_of(deployment(model_json(), R"({"supervision": {"model_cooldown_ms": 20000,
                                               "model_cooldown_max_ms": 5000}})"))
        == "server.supervision.model_cooldown_max_ms: must be >= model_cooldown_ms (20000), got 5000");
  CHECK(errors_of(deployment(model_json(), R"({"supervision": {"model_cooldown_ms": "10s"}})"))
        .find("server.supervision.model_cooldown_ms") == 0);
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

TEST_CASE("config reads how long a worker lingers for its next batch", "[config]") {
  auto cfg = parse_deployment(deployment(model_json()), "", backends);
  REQUIRE(cfg);
  CHECK(cfg->models[0].linger_us == 200);
  cfg = parse_deployment(deployment(model_json(R"(, "linger_us": 0)")), "", backends);
  REQUIRE(cfg);
  CHECK(cfg->models[0].linger_us == 0);
  CHECK(errors_of(deployment(model_json(R"(, "linger_us": 100001)")))
        == "models[0].linger_us: must be <= 100000, got 100001");
  CHECK(errors_of(deployment(model_json(R"(, "linger_us": -1)"))).find("models[0].linger_us")
        != std::string::npos);
}

TEST_CASE("gpu settings parse with defaults and buckets padded batches use", "[config][gpu]") {
  auto cfg = parse_deployment(deployment(model_json()), "", backends);
  REQUIRE(cfg);
  auto& m = cfg->models[0];
  CHECK(m.gpu.precision == gpu_precision::fp32);
  CHECK(m.gpu.cudnn_benchmark);
  CHECK_FALSE(m.gpu.cuda_graphs);
  CHECK(m.gpu.inflight_batches == 1);
  CHECK(m.gpu_buckets() == std::vector<uint32_t>{1, 2, 4, 8});
  auto big = m;
  big.max_batch_size = 128; // powers of two below 16, then steps of 16
  CHECK(big.gpu_buckets() == std::vector<uint32_t>{1, 2, 4, 8, 16, 32, 48, 64, 80, 96, 112, 128});
  big.max_batch_size = 1000; // steps of max/8
  CHECK(big.gpu_buckets().size() == 7 + 8);
  CHECK(big.gpu_buckets()[7] == 125);
  cfg = parse_deployment(deployment(model_json(R"(, "max_batch_size": 6,
    "gpu": {"precision": "fp16", "channels_last": true, "cuda_graphs": true,
            "inflight_batches": 2, "batch_buckets": [4, 1, 4]})")), "", backends);
  REQUIRE(cfg);
  auto& g = cfg->models[0];
  CHECK(g.gpu.precision == gpu_precision::fp16);
  CHECK(g.gpu.channels_last);
  CHECK(g.gpu.cuda_graphs);
  CHECK(g.gpu.inflight_batches == 2);
  CHECK(g.gpu_buckets() == std::vector<uint32_t>{1, 4, 6}); // max_batch_size always a bucket
  CHECK(errors_of(deployment(model_json(R"(, "gpu": {"precision": "int8"})")))
        == "models[0].gpu.precision: expected \"fp32\", \"fp16\" or \"bf16\", got \"int8\"");
  CHECK(errors_of(deployment(model_json(R"(, "gpu": {"batch_buckets": [16]})")))
        == "models[0].gpu.batch_buckets[0]: must be <= max_batch_size (8), got 16");
  CHECK(errors_of(deployment(model_json(R"(, "gpu": {"inflight_batches": 9})")))
        == "models[0].gpu.inflight_batches: must be <= 4, got 9");
  CHECK(errors_of(deployment(model_json(R"(, "gpu": {"graphs": true})")))
        == "models[0].gpu.graphs: unknown key");
}

namespace {

std::string image_model(const std::string& preprocess, const std::string& dims = "[32, 32, 3]") {
  return R"({"name": "img", "backend": "scale", "max_batch_size": 4,
             "inputs": [{"name": "image", "datatype": "UINT8", "dims": )"
         + dims + R"(}],
             "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]}], "preprocess": )"
         + preprocess + "}";
}

} // namespace

TEST_CASE("preprocess settings name a raw image input and check it", "[config][gpu]") {
  auto cfg = parse_deployment(
    deployment(image_model(R"({"resize": [24, 20], "mean": [0.485, 0.456, 0.406],
                               "std": [0.229, 0.224, 0.225]})")),
    "", backends);
  REQUIRE(cfg);
  auto& p = cfg->models[0].preprocess;
  CHECK(p.enabled);
  CHECK(p.input == "image"); // the first input by default
  CHECK(p.resize_height == 24);
  CHECK(p.resize_width == 20);
  CHECK(p.scale == Approx(1.0 / 255));
  CHECK(p.stdev[2] == Approx(0.225));
  CHECK(errors_of(deployment(image_model(R"({"std": [1, 0, 1]})")))
        == "models[0].preprocess.std[1]: must be > 0, got 0");
  CHECK(errors_of(deployment(image_model(R"({"mean": [1, 2]})")))
        == "models[0].preprocess.mean: expected an array of 3 numbers, got [1,2]");
  CHECK(errors_of(deployment(image_model(R"({"input": "x"})")))
        == "models[0].preprocess.input: names no declared input: \"x\"");
  CHECK(errors_of(deployment(image_model("{}", "[3, 32, 32]")))
        == "models[0].preprocess.input: input \"image\" must be declared UINT8 with dims "
           "[height, width, 3] (raw images)");
  CHECK(errors_of(deployment(image_model("{}", "[-1, -1, 3]")))
        == "models[0].preprocess.input: input \"image\" has a variable image size: give "
           "preprocess.resize so that batches share one shape");
  CHECK(errors_of(deployment(image_model(R"({"resize": [24]})")))
        == "models[0].preprocess.resize: expected [height, width], got [24]");
}

TEST_CASE("the node's cores are shared among the deployment's CPU instances", "[config]") {
  auto other = model_json(R"(, "devices": ["cpu", "cuda:0"])");
  other.replace(other.find("\"m\""), 3, "\"g\"");
  auto two_models = "{\"models\": [" + model_json(R"(, "instances": 2)") + ", " + other + "]}";
  auto cfg = parse_deployment(two_models, "", backends);
  REQUIRE(cfg);
  REQUIRE_FALSE(resolve_devices(*cfg, 1));
  share_cpu_threads(*cfg, 16); // 3 CPU instances (the GPU one computes on its GPU)
  CHECK(cfg->models[0].cpu_threads == 5);
  CHECK(cfg->models[1].cpu_threads == 5);
  share_cpu_threads(*cfg, 2); // more instances than cores: one thread each
  CHECK(cfg->models[0].cpu_threads == 1);
  auto scaled = parse_deployment(deployment(model_json(
                                   R"(, "autoscaling": {"enabled": true, "max_instances": 4})")),
                                 "", backends);
  REQUIRE(scaled);
  share_cpu_threads(*scaled, 16); // (as many as autoscaling may start)
  CHECK(scaled->models[0].cpu_threads == 4);
  auto gpu_only = parse_deployment(deployment(model_json(R"(, "devices": ["cuda:0"])")), "",
                                   backends);
  REQUIRE(gpu_only);
  share_cpu_threads(*gpu_only, 16);
  CHECK(gpu_only->models[0].cpu_threads == 0); // (no CPU instance: the library's default)
}

TEST_CASE("devices resolve \"all\" to the GPUs there are and reject missing ones",
          "[config][gpu]") {
  auto parse = [](const std::string& devices) {
    return parse_deployment(deployment(model_json(", \"devices\": " + devices)), "", backends);
  };
  auto cfg = parse(R"("all")");
  REQUIRE(cfg);
  auto two = *cfg;
  REQUIRE_FALSE(resolve_devices(two, 2));
  CHECK(two.models[0].devices == std::vector<std::string>{"cuda:0", "cuda:1"});
  auto none = *cfg;
  REQUIRE_FALSE(resolve_devices(none, 0));
  CHECK(none.models[0].devices == std::vector<std::string>{"cpu"});
  cfg = parse(R"(["cpu", "cuda:1"])");
  REQUIRE(cfg);
  auto err = resolve_devices(*cfg, 1);
  REQUIRE(err);
  CHECK(error_message(err)
        == "models[0].devices: model 'm' asks for cuda:1, which does not exist: this machine has "
           "1 usable CUDA device(s)");
  CHECK(errors_of(deployment(model_json(R"(, "devices": ["cpu", "cpu"])")))
        == "models[0].devices[1]: duplicate device \"cpu\"");
  CHECK(errors_of(deployment(model_json(R"(, "devices": "gpu")")))
        == "models[0].devices: expected \"all\", \"cpu\" or a non-empty array of \"cpu\" / "
           "\"cuda:N\" / \"all\", got \"gpu\"");
}

namespace {

/// The model "m" (FP32 [4] -> FP32 [4]), an INT32 model "n", and a pipeline with `steps`.
std::string pipeline_deployment(const std::string& steps, const std::string& extra = "",
                                const std::string& outputs = R"([{"name": "out", "datatype": "FP32", "dims": [4]}])") {
  return deployment(model_json() + R"(, {"name": "n", "backend": "scale", "max_batch_size": 4,
      "inputs": [{"name": "x", "datatype": "INT32", "dims": [4]}],
      "outputs": [{"name": "y", "datatype": "INT32", "dims": [4]}]},
    {"name": "p", "max_batch_size": 8,
     "inputs": [{"name": "in", "datatype": "FP32", "dims": [4]}],
     "outputs": )" + outputs + extra + R"(, "pipeline": )" + steps + "}");
}

} // namespace

TEST_CASE("a pipeline model chains other models' steps by tensor name", "[config][pipeline]") {
  auto cfg = parse_deployment(
    pipeline_deployment(R"([{"model": "m", "inputs": {"x": "in"}, "outputs": {"y": "mid"}},
                            {"model": "m", "inputs": {"x": "mid"}, "outputs": {"y": "out"}}])"),
    "", backends);
  REQUIRE(cfg);
  auto* p = cfg->find_model("p");
  REQUIRE(p);
  CHECK(p->is_pipeline());
  CHECK_FALSE(cfg->find_model("m")->is_pipeline());
  REQUIRE(p->pipeline.size() == 2);
  CHECK(p->pipeline[1].model == "m");
  CHECK(p->pipeline[1].inputs == std::map<std::string, std::string>{{"x", "mid"}});
  CHECK(p->pipeline[1].outputs == std::map<std::string, std::string>{{"y", "out"}});
  CHECK(p->devices.empty()); // (no workers of its own)
  CHECK(p->backend.empty());
}

TEST_CASE("pipeline errors name the step, the tensor and what does not fit", "[config][pipeline]") {
  auto step = [](const std::string& model, const std::string& in, const std::string& out) {
    return R"({"model": ")" + model + R"(", "inputs": )" + in + R"(, "outputs": )" + out + "}";
  };
  auto one = [&](const std::string& model, const std::string& in, const std::string& out) {
    return errors_of(pipeline_deployment("[" + step(model, in, out) + "]"));
  };
  CHECK(one("q", R"({"x": "in"})", R"({"y": "out"})")
        == "models[2].pipeline[0].model: no model \"q\" in this deployment");
  CHECK(one("m", R"({"x": "nope"})", R"({"y": "out"})")
        == "models[2].pipeline[0].inputs.x: no pipeline input or earlier step's output is called "
           "\"nope\"");
  CHECK(one("m", R"({"z": "in"})", R"({"y": "out"})")
        == "models[2].pipeline[0].inputs: model \"m\"'s input \"x\" is given no pipeline tensor\n"
           "models[2].pipeline[0].inputs.z: model \"m\" has no input \"z\"");
  CHECK(one("m", R"({"x": "in"})", R"({"w": "out"})")
        == "models[2].pipeline[0].outputs.w: model \"m\" has no output \"w\"");
  CHECK(one("m", R"({"x": "in"})", R"({"w": "out", "y": "out2"})")
        == "models[2].pipeline[0].outputs.w: model \"m\" has no output \"w\"");
  CHECK(one("m", R"({"x": "in"})", R"({"y": "in"})")
        == "models[2].pipeline[0].outputs.y: \"in\" is already a pipeline input or an earlier "
           "step's output\nmodels[2].outputs[0]: no step makes \"out\"");
  CHECK(one("n", R"({"x": "in"})", R"({"y": "out"})")
        == "models[2].pipeline[0].model: model \"n\" takes at most 4 rows, fewer than the "
           "pipeline's max_batch_size 8\n"
           "models[2].pipeline[0].inputs.x: \"in\" is FP32 [4] but model \"n\"'s input \"x\" "
           "takes INT32 [4]\n"
           "models[2].outputs[0]: \"out\" is made as INT32 [4] but declared FP32 [4]");
  // A step's input must exist before it: the steps run in an order without cycles.
  CHECK(errors_of(pipeline_deployment("[" + step("m", R"({"x": "mid"})", R"({"y": "out"})") + ","
                                      + step("m", R"({"x": "in"})", R"({"y": "mid"})") + "]"))
        == "models[2].pipeline[0].inputs.x: no pipeline input or earlier step's output is called "
           "\"mid\"");
  // A pipeline takes no keys that run a model, and its steps run models, not pipelines.
  CHECK(errors_of(pipeline_deployment("[" + step("m", R"({"x": "in"})", R"({"y": "out"})") + "]",
                                      R"(, "backend": "scale")"))
        == "models[2].backend: not for a pipeline model (its steps' models run on workers; a "
           "pipeline takes name, version, max_batch_size, inputs, outputs, pipeline, "
           "default_timeout_us, max_timeout_us, response_cache_bytes)");
  CHECK(errors_of(pipeline_deployment("[" + step("p", R"({"x": "in"})", R"({"y": "out"})") + "]"))
        == "models[2].pipeline[0].model: \"p\" is a pipeline; a step runs a model, not a "
           "pipeline");
  CHECK(errors_of(pipeline_deployment("[]"))
        == "models[2].pipeline: expected a non-empty array of steps, got an array");
  CHECK(errors_of(pipeline_deployment(R"([{"model": "m", "inputs": {}, "outputs": {"y": 3}}])"))
        == "models[2].pipeline[0].inputs: expected a non-empty object of the model's tensor names "
           "to pipeline tensor names, got an object\n"
           "models[2].pipeline[0].outputs.y: expected a pipeline tensor's name, got 3\n"
           "models[2].pipeline[0].inputs: model \"m\"'s input \"x\" is given no pipeline tensor\n"
           "models[2].outputs[0]: no step makes \"out\"");
}

TEST_CASE("an output's labels file is read at load, a missing one is an error", "[config][classification]") {
  auto dir = std::filesystem::temp_directory_path() / "actorserve_labels_test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "labels.txt") << "cat\r\ndog\n\nbird";
  auto with_labels = [](const std::string& file) {
    return R"({"models": [{"name": "m", "backend": "scale", "max_batch_size": 8,
               "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
               "outputs": [{"name": "y", "datatype": "FP32", "dims": [4], "labels": ")"
           + file + R"("}]}]})";
  };
  auto cfg = parse_deployment(with_labels("labels.txt"), dir.string(), backends);
  REQUIRE(cfg);
  CHECK(cfg->models[0].outputs[0].labels == std::vector<std::string>{"cat", "dog", "", "bird"});
  auto missing = parse_deployment(with_labels("none.txt"), dir.string(), backends);
  REQUIRE_FALSE(missing);
  CHECK(error_message(missing.error())
        == "models[0].outputs[0].labels: no such file: \"" + (dir / "none.txt").string() + "\"");
  CHECK(errors_of(deployment(R"({"name": "m", "backend": "scale", "max_batch_size": 8,
      "inputs": [{"name": "x", "datatype": "FP32", "dims": [4], "labels": "l.txt"}],
      "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]}]})"))
        == "models[0].inputs[0].labels: unknown key");
  std::filesystem::remove_all(dir);
}

TEST_CASE("server.queues: defaults, and errors that name the queue's key", "[config][queue]") {
  auto cfg = parse_deployment(
    deployment(model_json(), R"({"queues": [{"stream": "jobs"}, {"stream": "jobs", "group": "g2",
      "name": "second", "model": "m", "redis": {"host": "redis.local", "port": 6380, "db": 2},
      "reply_stream": "answers", "max_in_flight": 8, "delete_answered": false}]})"),
    "", backends);
  REQUIRE(cfg);
  REQUIRE(cfg->server.queues.size() == 2);
  auto& q = cfg->server.queues[0];
  CHECK(q.name == "jobs");
  CHECK(q.reply_stream == "jobs:replies");
  CHECK(q.group == "actorserve");
  CHECK(q.redis_host == "127.0.0.1");
  CHECK(q.redis_port == 6379);
  CHECK(q.max_in_flight == 128);
  CHECK(q.claim_idle_ms == 120'000);
  CHECK(q.max_deliveries == 3);
  CHECK(q.delete_answered);
  auto& q2 = cfg->server.queues[1];
  CHECK(q2.name == "second");
  CHECK(q2.model == "m");
  CHECK(q2.redis_host == "redis.local");
  CHECK(q2.redis_port == 6380);
  CHECK(q2.redis_db == 2);
  CHECK(q2.reply_stream == "answers");
  CHECK_FALSE(q2.delete_answered);

  auto err = errors_of(deployment(model_json(), R"({"queues": [{"model": "nope"}]})"));
  CHECK_THAT(err, Catch::Contains("server.queues[0].stream: required key is missing"));
  CHECK_THAT(err, Catch::Contains("server.queues[0].model: no model named \"nope\""));
  err = errors_of(deployment(model_json(), R"({"queues": [{"stream": "s", "colour": 1}]})"));
  CHECK_THAT(err, Catch::Contains("server.queues[0].colour"));
  err = errors_of(deployment(model_json(), R"({"queues": [{"stream": "s", "reply_stream": "s"}]})"));
  CHECK_THAT(err, Catch::Contains("server.queues[0].reply_stream: must differ"));
  err = errors_of(deployment(model_json(), R"({"queues": [{"stream": "a", "reply_stream": "b"},
    {"stream": "b"}]})"));
  CHECK_THAT(err, Catch::Contains("server.queues[0].reply_stream: \"b\" is the stream "
                                  "server.queues[1] reads requests from"));
  err = errors_of(deployment(model_json(), R"({"queues": [{"stream": "s"}, {"stream": "s"}]})"));
  CHECK_THAT(err, Catch::Contains("server.queues[1].name: \"s\" is server.queues[0]'s name too"));
  err = errors_of(deployment(model_json(),
                             R"({"queues": [{"stream": "s"}, {"stream": "s", "name": "t"}]})"));
  CHECK_THAT(err, Catch::Contains("server.queues[1].stream: server.queues[0] reads the same "
                                  "stream with the same group"));
  err = errors_of(deployment(model_json(R"(, "max_timeout_us": 60000000)"),
                             R"({"queues": [{"stream": "s", "claim_idle_ms": 30000}]})"));
  CHECK_THAT(err, Catch::Contains("server.queues[0].claim_idle_ms: must be >= 62000"));
  err = errors_of(deployment(model_json(), R"({"queues": [{"stream": "s", "redis":
    {"username": "u"}}]})"));
  CHECK_THAT(err, Catch::Contains("server.queues[0].redis.username: a username needs password_env"));
  err = errors_of(deployment(model_json(), R"({"cluster": {"role": "worker", "seeds":
    ["127.0.0.1:1"]}, "queues": [{"stream": "s"}]})"));
  CHECK_THAT(err, Catch::Contains("server.queues[0]: a worker node"));
}

TEST_CASE("server.http.tls: off unless given, the certificate and key required, files checked",
          "[config][tls]") {
  auto cfg = parse_deployment(deployment(model_json()), "", backends);
  REQUIRE(cfg);
  CHECK_FALSE(cfg->server.http.tls.enabled());
  auto err = errors_of(deployment(model_json(), R"({"http": {"tls":
    {"certificate": "/no/such.pem", "client_ca": "/no/ca.pem", "ciphers": "x"}}})"));
  CHECK_THAT(err, Catch::Contains("server.http.tls.key: required key is missing"));
  CHECK_THAT(err, Catch::Contains("server.http.tls: no such file: \"/no/such.pem\""));
  CHECK_THAT(err, Catch::Contains("server.http.tls: no such file: \"/no/ca.pem\""));
  CHECK_THAT(err, Catch::Contains("server.http.tls.ciphers"));
  CHECK(cfg->server.http.tls.reload_interval_ms == 10'000);
  // (gRPC's credentials are fixed at start: no reload interval there)
  err = errors_of(deployment(model_json(), R"({"http": {"tls": {"certificate": "/a",
    "key": "/b", "reload_interval_ms": -1}}, "grpc": {"tls": {"certificate": "/a", "key": "/b",
    "reload_interval_ms": 100}}})"));
  CHECK_THAT(err, Catch::Contains("server.http.tls.reload_interval_ms"));
  CHECK_THAT(err, Catch::Contains("server.grpc.tls.reload_interval_ms"));
}

TEST_CASE("server.grpc: on when given, Triton's port by default, TLS files checked",
          "[config][grpc]") {
  auto cfg = parse_deployment(deployment(model_json()), "", backends);
  REQUIRE(cfg);
  CHECK_FALSE(cfg->server.grpc.enabled);
  cfg = parse_deployment(deployment(model_json(), R"({"grpc": {}})"), "", backends);
  REQUIRE(cfg);
  CHECK(cfg->server.grpc.enabled);
  CHECK(cfg->server.grpc.port == 8001);
  CHECK(cfg->server.grpc.address == "127.0.0.1");
  CHECK(cfg->server.grpc.max_message_bytes == 64ull << 20);
  CHECK_FALSE(cfg->server.grpc.tls.enabled());
  cfg = parse_deployment(deployment(model_json(), R"({"grpc": {"enabled": false, "port": 0}})"),
                         "", backends);
  REQUIRE(cfg);
  CHECK_FALSE(cfg->server.grpc.enabled);
  auto err = errors_of(deployment(model_json(), R"({"grpc": {"port": 70000, "tls":
    {"certificate": "/no/such.pem"}}})"));
  CHECK_THAT(err, Catch::Contains("server.grpc.port: must be <= 65535"));
  CHECK_THAT(err, Catch::Contains("server.grpc.tls.key: required key is missing"));
  CHECK_THAT(err, Catch::Contains("server.grpc.tls: no such file: \"/no/such.pem\""));
}

TEST_CASE("autoscaling spreads its instance slots over the devices and starts the initial ones",
          "[config][autoscale]") {
  auto cfg = parse_deployment(deployment(model_json(R"(, "devices": ["cpu", "cuda:0"],
    "autoscaling": {"min_instances": 1, "max_instances": 5, "max_per_device": 3,
                    "initial_instances": 2})")), "", backends);
  REQUIRE(cfg);
  auto& m = cfg->models[0];
  CHECK(m.autoscaling.enabled);
  using slot = std::pair<std::string, uint32_t>;
  CHECK(m.instance_slots() == std::vector<slot>{{"cpu", 0}, {"cuda:0", 0}, {"cpu", 1},
                                                {"cuda:0", 1}, {"cpu", 2}});
  CHECK(m.initial_instances() == 2);
  // Without autoscaling: every instance of every device, device by device, all started.
  auto fixed = parse_deployment(deployment(model_json(R"(, "devices": ["cpu", "cuda:0"],
    "instances": 2)")), "", backends);
  REQUIRE(fixed);
  CHECK(fixed->models[0].instance_slots()
        == std::vector<slot>{{"cpu", 0}, {"cpu", 1}, {"cuda:0", 0}, {"cuda:0", 1}});
  CHECK(fixed->models[0].initial_instances() == 4);
  // "enabled": false: as if there were no autoscaling ("instances" allowed and used).
  auto off = parse_deployment(deployment(model_json(R"(, "instances": 2,
    "autoscaling": {"enabled": false, "max_instances": 4})")), "", backends);
  REQUIRE(off);
  CHECK(off->models[0].instance_slots().size() == 2);
}

TEST_CASE("autoscaling keys that do not fit together are refused, each named",
          "[config][autoscale]") {
  auto e = errors_of(deployment(model_json(R"(, "instances": 2,
    "autoscaling": {"max_instances": 2})")));
  CHECK(e.find("models[0].instances: not with \"autoscaling\"") != std::string::npos);
  e = errors_of(deployment(model_json(R"(, "autoscaling": {"min_instances": 2})")));
  CHECK(e.find("models[0].autoscaling.max_instances") != std::string::npos);
  e = errors_of(deployment(model_json(R"(, "devices": ["cpu"],
    "autoscaling": {"max_instances": 4, "max_per_device": 2, "initial_instances": 5})")));
  CHECK(e.find("models[0].autoscaling.max_instances: must be <= devices x max_per_device (2)")
        != std::string::npos);
  CHECK(e.find("models[0].autoscaling.initial_instances: must be between") != std::string::npos);
  e = errors_of(deployment(model_json(R"(, "autoscaling": {"max_instances": 2,
    "target_ongoing_requests": 0, "predicted_misses": false})")));
  CHECK(e.find("models[0].autoscaling: has nothing to scale on") != std::string::npos);
  e = errors_of(deployment(model_json(R"(, "autoscaling": {"max_instances": 2, "speed": 3})")));
  CHECK(e.find("speed") != std::string::npos);
}

TEST_CASE("server.tracing: off by default, on with its object, every key checked", "[config]") {
  auto off = parse_deployment(deployment(model_json()), "", backends);
  REQUIRE(off);
  CHECK_FALSE(off->server.tracing.enabled);
  auto on = parse_deployment(deployment(model_json(), R"({"tracing": {
      "endpoint": "http://collector:4318/v1/traces", "headers": {"Authorization": "Bearer x"},
      "service_name": "edge", "resource_attributes": {"deployment.environment": "prod"},
      "sample_ratio": 0.01, "parent_based": false, "sample_errors": false,
      "sample_slower_than_ms": 250, "max_queue_spans": 100, "max_export_batch": 10,
      "export_interval_ms": 20, "export_timeout_ms": 300}})"), "", backends);
  REQUIRE(on);
  auto& t = on->server.tracing;
  CHECK(t.enabled);
  CHECK(t.protocol == "http/protobuf");
  CHECK(t.endpoint == "http://collector:4318/v1/traces");
  CHECK(t.headers.at("Authorization") == "Bearer x");
  CHECK(t.service_name == "edge");
  CHECK(t.resource_attributes.at("deployment.environment") == "prod");
  CHECK(t.sample_ratio == 0.01);
  CHECK_FALSE(t.parent_based);
  CHECK_FALSE(t.sample_errors);
  CHECK(t.sample_slower_than_ms == 250);
  CHECK(t.max_queue_spans == 100);
  CHECK(t.max_export_batch == 10);
  CHECK(t.export_interval_ms == 20);
  CHECK(t.export_timeout_ms == 300);
  auto grpc = parse_deployment(deployment(model_json(), R"({"tracing": {"protocol": "grpc"}})"),
                               "", backends);
  REQUIRE(grpc);
  CHECK(grpc->server.tracing.endpoint == "http://127.0.0.1:4317"); // (gRPC's port by default)
  auto disabled = parse_deployment(deployment(model_json(), R"({"tracing": {"enabled": false}})"),
                                   "", backends);
  REQUIRE(disabled);
  CHECK_FALSE(disabled->server.tracing.enabled);

  CHECK(errors_of(deployment(model_json(), R"({"tracing": {"protocol": "zipkin"}})"))
        == "server.tracing.protocol: expected \"http/protobuf\" or \"grpc\", got \"zipkin\"");
  CHECK(errors_of(deployment(model_json(), R"({"tracing": {"endpoint": "https://c:4318"}})"))
          .find("server.tracing.endpoint: expected an http:// URL") != std::string::npos);
  CHECK(errors_of(deployment(model_json(), R"({"tracing": {"sample_ratio": 1.5}})"))
        == "server.tracing.sample_ratio: must be <= 1, got 1.5E0");
  CHECK(errors_of(deployment(model_json(), R"({"tracing": {"headers": {"a": 1}}})"))
        == "server.tracing.headers.a: expected a string, got 1");
  CHECK(errors_of(deployment(model_json(), R"({"tracing": {"max_queue_spans": 0}})"))
          .find("server.tracing.max_queue_spans") != std::string::npos);
  CHECK(errors_of(deployment(model_json(), R"({"tracing": {"sampler": "always"}})"))
        == "server.tracing.sampler: unknown key");
}
