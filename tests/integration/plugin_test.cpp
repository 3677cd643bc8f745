// A plugin built out of tree against the installed actorserve (examples/plugin, built by
// tests/integration/build_plugin.sh): loaded from the deployment's "plugins", its stage runs in
// a pipeline after a model; a library that is not a plugin is refused naming its file.
#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include "support.hpp"

using namespace actorserve::itest;

namespace {

std::string plugin_config(const std::string& plugin) {
  return R"({"server": {"http": {"port": 0}}, "plugins": [")" + plugin + R"("],
    "models": [
      {"name": "scale", "backend": "scale", "max_batch_size": 8,
       "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
       "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]}],
       "parameters": {"factor": 2.0, "bias": 1.0}},
      {"name": "top2", "max_batch_size": 8,
       "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
       "outputs": [{"name": "classes", "datatype": "INT64", "dims": [2]},
                   {"name": "scores", "datatype": "FP32", "dims": [2]}],
       "pipeline": [
         {"model": "scale", "inputs": {"x": "x"}, "outputs": {"y": "y"}},
         {"stage": "topk", "parameters": {"k": 2},
          "inputs": {"scores": "y"}, "outputs": {"indices": "classes", "values": "scores"}}]}]})";
}

} // namespace

TEST_CASE("a plugin built against the installed actorserve adds a stage a pipeline runs",
          "[integration][plugin]") {
  std::string plugin = std::string(ACTORSERVE_BUILD_DIR) + "/plugin-build/topk_plugin.so";
  server_process srv{write_temp_file("plugin.json", plugin_config(plugin))};
  REQUIRE(srv.wait_ready());
  http_client client{srv.port()};
  auto r = client.post("/v2/models/top2/infer",
                       R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2,4],
                           "data":[1,5,3,2, 0,0,9,8]}]})");
  INFO(r.body);
  INFO(srv.log());
  REQUIRE(r.status == 200);
  auto doc = boost::json::parse(r.body).as_object();
  auto& outputs = doc.at("outputs").as_array();
  REQUIRE(outputs.size() == 2);
  // scale: y = 2x + 1 -> [3, 11, 7, 5], [1, 1, 19, 17]; top 2 of each row.
  CHECK(boost::json::serialize(outputs[0].at("data")) == "[1,2,2,3]");
  CHECK(boost::json::serialize(outputs[1].at("data")) == "[11,7,19,17]");
}

TEST_CASE("a shared library that is not an actorserve plugin is refused naming it",
          "[integration][plugin]") {
  auto cfg = write_temp_file("not_plugin.json",
                             plugin_config("/lib/x86_64-linux-gnu/libz.so.1"));
  auto out = run_command({ACTORSERVE_BINARY, "check-config", cfg});
  INFO(out.second);
  CHECK(out.first != 0);
  CHECK(out.second.find("plugin /lib/x86_64-linux-gnu/libz.so.1: not an actorserve plugin (no "
                        "ACTORSERVE_PLUGIN(...) entry points)")
        != std::string::npos);
  auto missing = write_temp_file("missing_plugin.json", plugin_config("/nonexistent/p.so"));
  out = run_command({ACTORSERVE_BINARY, "check-config", missing});
  CHECK(out.first != 0);
  CHECK(out.second.find("plugin /nonexistent/p.so: cannot be loaded") != std::string::npos);
}
