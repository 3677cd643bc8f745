// The front registry and what serve refuses before it starts anything (net/front), and the
// executable's command line (app/command_line).
#include <catch2/catch.hpp>

#include "app/command_line.hpp"
#include "net/front.hpp"
#include "runtime/config.hpp"
#include "runtime/error.hpp"

using namespace actorserve;

namespace {

front_factory none() {
  return [](const std::shared_ptr<inference>&) { return std::vector<std::unique_ptr<front>>{}; };
}

std::variant<serve_options, usage_error> serve_args(std::vector<std::string> args) {
  args.insert(args.begin(), {"actorserve", "serve"});
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  return parse_serve(static_cast<int>(argv.size()), argv.data());
}

} // namespace

TEST_CASE("fronts start by rank, whatever order they registered in", "[front]") {
  front_registry r;
  r.add({"http", 100, none()});
  r.add({"queues", 20, none()});
  r.add({"grpc", 10, none()});
  r.add({"extra", 20, none()});
  std::vector<std::string> names;
  for (auto& k : r.kinds())
    names.push_back(k.name);
  CHECK(names == std::vector<std::string>{"grpc", "queues", "extra", "http"});
  CHECK(r.has("grpc"));
  CHECK_FALSE(r.has("grp"));
}

TEST_CASE("a deployment asking for a front this build lacks is refused, naming the option",
          "[front]") {
  deployment_config cfg;
  front_registry http_only;
  http_only.add({"http", 100, none()});
  CHECK_FALSE(missing_front(cfg, http_only));
  cfg.server.grpc.enabled = true;
  auto err = missing_front(cfg, http_only);
  REQUIRE(err);
  CHECK_THAT(error_message(err), Catch::Contains("server.grpc is set but this build has no gRPC"));
  front_registry with_grpc = http_only;
  with_grpc.add({"grpc", 10, none()});
  CHECK_FALSE(missing_front(cfg, with_grpc));
  cfg.server.queues.emplace_back();
  CHECK_THAT(error_message(missing_front(cfg, with_grpc)), Catch::Contains("server.queues"));
}

TEST_CASE("serve's command line: overrides parsed, a bad one named", "[front]") {
  auto ok = serve_args({"--config", "d.json", "--port", "0", "--grpc-port", "9001"});
  REQUIRE(std::holds_alternative<serve_options>(ok));
  auto& o = std::get<serve_options>(ok);
  CHECK(o.config_path == "d.json");
  CHECK(o.port == uint16_t{0});
  CHECK(o.grpc_port == uint16_t{9001});
  CHECK(o.address.empty());
  auto message = [](const std::variant<serve_options, usage_error>& v) {
    return std::holds_alternative<usage_error>(v) ? std::get<usage_error>(v).message : "(ok)";
  };
  CHECK(message(serve_args({})) == "serve needs --config FILE");
  CHECK(message(serve_args({"--config"})) == "--config needs a value");
  CHECK(message(serve_args({"--config", "d", "--port", "65536"}))
        == "--port must be 0..65535, got '65536'");
  CHECK(message(serve_args({"--config", "d", "--port", "80x"})) == "--port must be 0..65535, got '80x'");
  CHECK(message(serve_args({"--config", "d", "--colour", "red"})) == "unknown argument '--colour'");
}
