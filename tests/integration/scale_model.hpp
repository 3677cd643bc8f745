// The "scale" example backend as the integration tests serve it (y = 2x + 1 on FP32 [batch, 4],
// no libtorch needed), and what the tests of the real process ask of its answers.
#pragma once

#include <cstdint>
#include <string>

#include <signal.h>
#include <sys/types.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "support.hpp"

namespace actorserve::itest {

namespace json = boost::json;


/// A deployment with one "scale" model (y = 2x + 1 on FP32 [batch, 4]); `model_extra` and
/// `server_extra` are spliced into the model and server objects.
inline std::string scale_config(const std::string& model_extra = "", const std::string& server_extra = "") {
  return R"({"server": {"http": {"port": 0, "max_body_bytes": 4096})" + server_extra + R"(},
    "models": [{"name": "scale", "backend": "scale", "max_batch_size": 8,
      "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
      "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]}],
      "restart": {"backoff_initial_ms": 50, "backoff_max_ms": 200},
      "parameters": {"factor": 2, "bias": 1})" + model_extra + "}]}";
}

inline std::string infer_body(const std::string& params = "", const std::string& data = "[1,2,3,4]") {
  return R"({"id": "t1", )" + (params.empty() ? "" : R"("parameters": {)" + params + "}, ")
         + R"("inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": )" + data
         + "}]}";
}

inline json::object parse(const http_response& r) {
  INFO(r.body);
  return json::parse(r.body).as_object();
}

inline std::string error_of(const http_response& r) {
  INFO(r.body);
  auto doc = parse(r);
  REQUIRE(doc.contains("error"));
  return std::string(doc["error"].as_string());
}

inline void check_still_serving(uint16_t port) {
  http_client c{port};
  auto r = c.post("/v2/models/scale/infer", infer_body());
  REQUIRE(r.status == 200);
  CHECK(json::serialize(parse(r)["outputs"].as_array()[0].as_object()["data"]) == "[3,5,7,9]");
}

/// Arms a fault (POST /v2/admin/faults) on a node that allows fault injection.
inline http_response arm(uint16_t port, const std::string& body) {
  http_client c{port};
  return c.post("/v2/admin/faults", body);
}

/// The pid of the newest process of isolated worker `name`, from the node's log (0 if none).
inline long isolated_pid(const std::string& log, const std::string& name) {
  auto key = "worker process " + name + " started (pid ";
  auto pos = log.rfind(key);
  return pos == std::string::npos ? 0 : std::stol(log.substr(pos + key.size()));
}

/// Whether process `pid` still exists.
inline bool process_alive(long pid) {
  return pid > 0 && ::kill(static_cast<pid_t>(pid), 0) == 0;
}

} // namespace actorserve::itest
