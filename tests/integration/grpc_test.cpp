// The gRPC front with NVIDIA Triton's own Python gRPC client (tests/integration/python/
// triton_grpc_test.py), TLS, and a model load in progress when the node stops.
#include <catch2/catch.hpp>

#include <signal.h>

#include "support.hpp"

using namespace actorserve::itest;

namespace {

std::string grpc_config(uint16_t grpc_port) {
  auto model = [](const std::string& name, const std::string& extra) {
    return R"({"name": ")" + name + R"(", "backend": "scale", "max_batch_size": 8,
      "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
      "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]}],
      "parameters": {"factor": 2, "bias": 1)" + extra + "}}";
  };
  // (max_stream_pending small: the stream tests' 100 requests on one call wait for answers to be
  // written before more are read, and must all be answered all the same.)
  return R"({"server": {"http": {"port": 0}, "grpc": {"port": )" + std::to_string(grpc_port)
         + R"(, "max_message_bytes": 1048576, "max_stream_pending": 4}}, "models": [)"
         + model("scale", "") + ", "
         + model("slow", R"(, "delay_us": 300000)") + "]}";
}

/// Runs tests/integration/python/SCRIPT with the project's venv (Triton's clients) and `args`.
std::pair<int, std::string> run_script(const std::string& script, std::vector<std::string> args) {
  args.insert(args.begin(), {std::string(ACTORSERVE_SOURCE_DIR) + "/.venv/bin/python",
                             std::string(ACTORSERVE_SOURCE_DIR) + "/tests/integration/python/"
                               + script});
  return run_command(args);
}

} // namespace

TEST_CASE("NVIDIA Triton's Python gRPC client works against actorserve", "[integration][grpc]") {
  auto grpc_port = free_port();
  server_process srv{write_temp_file("grpc.json", grpc_config(grpc_port))};
  REQUIRE(srv.wait_ready());
  auto out = run_script("triton_grpc_test.py", {"127.0.0.1:" + std::to_string(grpc_port),
                                                 "127.0.0.1:" + std::to_string(srv.port())});
  INFO(out.second);
  INFO(srv.log());
  CHECK(out.first == 0);
  CHECK(out.second.find("triton grpc client: ok") != std::string::npos);
}

TEST_CASE("gRPC requests whose strings are not UTF-8 are refused without a log line each",
          "[integration][grpc]") {
  // (protobuf logged each of them on stderr, past the node's logger: a line per request.)
  auto grpc_port = free_port();
  server_process srv{write_temp_file("grpc_utf8.json", grpc_config(grpc_port))};
  REQUIRE(srv.wait_ready());
  auto out = run_script("grpc_bad_utf8_test.py", {"127.0.0.1:" + std::to_string(grpc_port), "200"});
  INFO(out.second);
  CHECK(out.first == 0);
  CHECK(out.second.find("bad utf8: ok 200 refused") != std::string::npos);
  auto log = srv.log();
  CHECK(occurrences(log, "invalid UTF-8") == 1);
  CHECK(log.find("grpc: protobuf: String field") != std::string::npos);
  CHECK(log.find("more within a minute at debug level") != std::string::npos);
  CHECK(http_client{srv.port()}.get("/v2/health/ready").status == 200);
}

TEST_CASE("a gRPC port already taken is refused at start, naming it", "[integration][grpc]") {
  auto grpc_port = free_port();
  server_process first{write_temp_file("grpc_a.json", grpc_config(grpc_port))};
  REQUIRE(first.wait_ready());
  // (Bounded: a second node that shared the port would serve until killed.)
  auto out = run_command({"timeout", "20", actorserve_binary(), "serve", "--config",
                          write_temp_file("grpc_b.json", grpc_config(grpc_port)), "--port", "0"});
  CHECK(out.first == 1);
  CHECK(out.second.find("cannot serve gRPC on 127.0.0.1:" + std::to_string(grpc_port))
        != std::string::npos);
}

TEST_CASE("gRPC over TLS serves clients whose certificate the client CA signed, and only them",
          "[integration][grpc][tls]") {
  auto dir = make_certificates("grpc_tls", {"ca", "rogue_ca"},
                               {{"server", "ca"}, {"client", "ca"}, {"rogue", "rogue_ca"}});
  auto grpc_port = free_port();
  auto config = grpc_config(grpc_port);
  config.replace(config.find(R"("max_message_bytes": 1048576)"), 28,
                 R"("max_message_bytes": 1048576, "tls": {"certificate": ")" + dir
                   + R"(/server.pem", "key": ")" + dir + R"(/server.key", "client_ca": ")" + dir
                   + R"(/ca.pem"})");
  server_process srv{write_temp_file("grpc_tls.json", config)};
  REQUIRE(srv.wait_ready());
  auto out = run_script("grpc_tls_test.py", {"127.0.0.1:" + std::to_string(grpc_port), dir});
  INFO(out.second);
  INFO(srv.log());
  CHECK(out.first == 0);
  CHECK(out.second.find("grpc tls: ok") != std::string::npos);

  // A key that is not the certificate's is refused at start, naming TLS.
  auto wrong = config;
  wrong.replace(wrong.find(dir + "/server.key"), dir.size() + 11, dir + "/client.key");
  auto started = run_command({"timeout", "20", actorserve_binary(), "serve", "--config",
                              write_temp_file("grpc_tls_bad.json", wrong), "--port", "0",
                              "--grpc-port", std::to_string(free_port())});
  CHECK(started.first == 1);
  CHECK(started.second.find("TLS key") != std::string::npos);
}

TEST_CASE("a model load over gRPC in progress at SIGTERM is answered and does not hold the node",
          "[integration][grpc][control]") {
  // The load (a reload of the serving model) waits for the model's slow request to drain (2 s)
  // when SIGTERM comes, then for the worker started again to warm up (2 s more); the node drains
  // that request, answers the load "shutting down" and exits, long before the load's own limit
  // (60 s) would have ended it.
  auto grpc_port = free_port();
  auto config = R"({"server": {"http": {"port": 0, "model_load_wait_ms": 60000}, "grpc": {"port": )"
                + std::to_string(grpc_port) + R"(}}, "models": [{"name": "slow", "backend": "scale",
      "max_batch_size": 8, "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
      "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]}],
      "parameters": {"factor": 2, "bias": 1, "delay_us": 2000000},
      "warmup": {"batch_sizes": [1], "iterations": 1}}]})";
  server_process srv{write_temp_file("grpc_load_stop.json", config)};
  REQUIRE(srv.wait_ready());
  auto out = run_script("grpc_load_shutdown_test.py", {"127.0.0.1:" + std::to_string(grpc_port),
                                                 "127.0.0.1:" + std::to_string(srv.port()), std::to_string(srv.pid())});
  INFO(out.second);
  INFO(srv.log());
  CHECK(out.first == 0);
  CHECK(out.second.find("grpc load at shutdown: ok") != std::string::npos);
  CHECK(srv.stop() == 0); // (exited by then, or within stop's 10 s; else -1 after SIGKILL)
  CHECK(srv.log().find("actors still running") == std::string::npos);
}

TEST_CASE("restricted API groups need their header on HTTP and gRPC, with Triton's clients",
          "[integration][grpc][hardening]") {
  auto grpc_port = free_port();
  auto config = grpc_config(grpc_port);
  config.replace(config.find(R"("server": {)"), 11,
                 R"("server": {"restricted_apis": [{"groups": ["model-repository", "statistics"],
                                                    "header": "admin-key", "value": "s3cret"}], )");
  server_process srv{write_temp_file("restricted.json", config)};
  REQUIRE(srv.wait_ready());
  auto out = run_script("restricted_api_test.py", {"127.0.0.1:" + std::to_string(grpc_port),
                                                 "127.0.0.1:" + std::to_string(srv.port())});
  INFO(out.second);
  INFO(srv.log());
  CHECK(out.first == 0);
  CHECK(out.second.find("restricted api: ok") != std::string::npos);
}

TEST_CASE("an HTTP/2 rapid-reset flood on the gRPC port does not stop the node",
          "[integration][grpc][hardening]") {
  auto grpc_port = free_port();
  server_process srv{write_temp_file("rapid_reset.json", grpc_config(grpc_port))};
  REQUIRE(srv.wait_ready());
  auto out = run_script("grpc_rapid_reset_test.py", {"127.0.0.1:" + std::to_string(grpc_port),
                                                 "127.0.0.1:" + std::to_string(srv.port()), "20000"});
  INFO(out.second);
  INFO(srv.log());
  CHECK(out.first == 0);
  CHECK(out.second.find("rapid reset: ok") != std::string::npos);
  CHECK(srv.running());
}
