// Restricted API groups (server.restricted_apis): which requests a restriction refuses, and how
// the deployment file declares them.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "runtime/api_access.hpp"
#include "runtime/config.hpp"
#include "runtime/error.hpp"

using namespace actorserve;

TEST_CASE("a restricted group is served only with its header's exact value, others are open",
          "[access]") {
  std::vector<api_restriction> all{
    {{api_group::model_repository, api_group::shared_memory}, "admin-key", "s3cret"}};
  using sv = std::string_view;
  CHECK_FALSE(refusal(all, api_group::model_repository, sv("s3cret")));
  CHECK_FALSE(refusal(all, api_group::inference, std::nullopt)); // not restricted
  auto missing = refusal(all, api_group::shared_memory, std::nullopt);
  REQUIRE(missing);
  CHECK(*missing == "API group 'shared-memory' is restricted on this server: send 'admin-key' "
                    "with its configured value (server.restricted_apis)");
  for (auto wrong : {sv("s3cre"), sv("s3cret!"), sv(""), sv("S3CRET")})
    CHECK(refusal(all, api_group::model_repository, wrong));
}

TEST_CASE("API group names are Triton's", "[access]") {
  for (auto name : {"health", "metadata", "inference", "model-config", "model-repository",
                    "shared-memory", "statistics", "metrics", "admin"}) {
    auto g = parse_api_group(name);
    REQUIRE(g);
    CHECK(std::string(to_string(*g)) == name);
  }
  CHECK_FALSE(parse_api_group("model_repository"));
}

namespace {

std::string errors_of(const std::string& server) {
  auto cfg = parse_deployment(
    R"({"server": )" + server + R"(, "models": [{"name": "m", "backend": "scale",
      "max_batch_size": 8, "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
      "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]}]}]})",
    "", {"scale"});
  return cfg ? "" : error_message(cfg.error());
}

} // namespace

TEST_CASE("server.restricted_apis: groups, a header and its value (or the variable holding it)",
          "[access][config]") {
  auto cfg = parse_deployment(
    R"({"server": {"restricted_apis": [{"groups": ["model-repository"], "header": "Admin-Key",
                                        "value": "v"}], "model_control": false},
        "models": [{"name": "m", "backend": "scale", "max_batch_size": 8,
      "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
      "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]}]}]})",
    "", {"scale"});
  REQUIRE(cfg);
  REQUIRE(cfg->server.restricted_apis.size() == 1);
  CHECK(cfg->server.restricted_apis[0].header == "admin-key"); // (compared without case)
  CHECK_FALSE(cfg->server.model_control);
  ::setenv("ACTORSERVE_TEST_ADMIN_KEY", "from-env", 1);
  cfg = parse_deployment(
    R"({"server": {"restricted_apis": [{"groups": ["admin"], "header": "k",
                                        "value_env": "ACTORSERVE_TEST_ADMIN_KEY"}]},
        "models": [{"name": "m", "backend": "scale", "max_batch_size": 8,
      "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
      "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]}]}]})",
    "", {"scale"});
  REQUIRE(cfg);
  CHECK(cfg->server.restricted_apis[0].value == "from-env");
  CHECK(errors_of(R"({"restricted_apis": [{"groups": ["repository"], "header": "k", "value": "v"}]})")
        == "server.restricted_apis[0].groups[0]: expected one of \"health\", \"metadata\", "
           "\"inference\", \"model-config\", \"model-repository\", \"shared-memory\", "
           "\"statistics\", \"metrics\" or \"admin\", got \"repository\"");
  CHECK(errors_of(R"({"restricted_apis": [{"groups": ["admin"], "header": "k"}]})")
        == "server.restricted_apis[0]: give the header's value as \"value\" or as \"value_env\" "
           "(the environment variable that holds it), one of them");
  CHECK(errors_of(R"({"restricted_apis": [{"groups": ["admin"], "header": "a key", "value": "v"}]})")
        == "server.restricted_apis[0].header: expected a header name (letters, digits, '-', '_', "
           "'.'), got \"a key\"");
  CHECK(errors_of(R"({"restricted_apis": [{"groups": ["admin"], "header": "k",
                                           "value_env": "ACTORSERVE_TEST_UNSET_VARIABLE"}]})")
        == "server.restricted_apis[0].value_env: the environment variable "
           "ACTORSERVE_TEST_UNSET_VARIABLE is not set");
  CHECK(errors_of(R"({"restricted_apis": [{"groups": ["admin"], "header": "k", "value": "v"},
                                          {"groups": ["health", "admin"], "header": "j", "value": "w"}]})")
        == "server.restricted_apis[1].groups: group \"admin\" is restricted twice; name each "
           "group once");
  CHECK(errors_of(R"({"http": {"allowed_origins": ["console.example.com"]}})")
        == "server.http.allowed_origins[0]: expected an origin such as "
           "\"https://console.example.com\", got \"console.example.com\"");
}
