// What an HTTP request asks for before a handler runs: its route, the route's API group, whether
// it changes state, and whether its framing is acceptable (RFC 9112).
#include <catch2/catch.hpp>

#include <set>

#include <boost/beast/http.hpp>

#include "net/http/routes.hpp"

using namespace actorserve;
namespace http = boost::beast::http;

TEST_CASE("targets map to routes, with model, version and region", "[http]") {
  auto r = parse_route("/v2/models/mlp/versions/2/infer?x=1");
  CHECK(r.kind == route::model_infer);
  CHECK(r.model == "mlp");
  CHECK(r.version == "2");
  CHECK(parse_route("/v2/models/mlp").kind == route::model_meta);
  CHECK(parse_route("/v2/models/mlp/ready").kind == route::model_ready);
  CHECK(parse_route("/v2/health/ready").kind == route::health_ready);
  CHECK(parse_route("/v2/repository/models/mlp/unload").kind == route::model_unload);
  CHECK(parse_route("/v2/repository/models/mlp/instances").kind == route::model_instances);
  auto shm = parse_route("/v2/systemsharedmemory/region/in%2F0/register");
  CHECK(shm.kind == route::shm_register);
  CHECK(shm.region == "in/0");
  CHECK(parse_route("/v2/systemsharedmemory/register").kind == route::not_found); // (no name)
  CHECK(parse_route("/v2/systemsharedmemory/region/%zz/status").kind == route::not_found);
  CHECK(parse_route("/v2/models/mlp/infer/more").kind == route::not_found);
  CHECK(parse_route("/v3").kind == route::not_found);
}

TEST_CASE("routes belong to Triton's API groups, and state-changing ones are marked", "[http]") {
  CHECK(group_of(route::model_infer) == api_group::inference);
  CHECK(group_of(route::model_load) == api_group::model_repository);
  CHECK(group_of(route::model_instances) == api_group::model_repository);
  CHECK(group_of(route::repository_index) == api_group::model_repository);
  CHECK(group_of(route::shm_status) == api_group::shared_memory);
  CHECK(group_of(route::prometheus) == api_group::metrics);
  CHECK(group_of(route::admin_faults) == api_group::admin);
  CHECK_FALSE(group_of(route::not_found));
  for (auto k : {route::model_load, route::model_unload, route::model_instances,
                 route::shm_register, route::shm_unregister, route::admin_faults})
    CHECK(changes_state(k));
  for (auto k : {route::model_infer, route::repository_index, route::shm_status})
    CHECK_FALSE(changes_state(k));
}

namespace {

/// The framing verdict on a request header as Beast's parser reads it.
std::string verdict(const std::string& head) {
  http::request_parser<http::empty_body> p;
  boost::beast::error_code ec;
  p.put(boost::asio::buffer(head), ec);
  REQUIRE_FALSE(ec);
  REQUIRE(p.is_header_done());
  auto bad = framing_error(p.get(), p.chunked());
  return bad ? std::to_string(static_cast<unsigned>(bad->first)) + " " + bad->second : "ok";
}

} // namespace

TEST_CASE("framing a proxy could read differently is refused (RFC 9112)", "[http][hardening]") {
  CHECK(verdict("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n") == "ok");
  CHECK(verdict("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n") == "ok");
  CHECK(verdict("GET / HTTP/1.0\r\n\r\n") == "ok");
  CHECK(verdict("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")
        == "400 Transfer-Encoding 'gzip' does not end in chunked: the body's length is unknown "
           "(RFC 9112 6.3)");
  CHECK(verdict("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n")
            .rfind("400 Transfer-Encoding 'chunked, gzip' does not end in chunked", 0) == 0);
  CHECK(verdict("GET / HTTP/1.1\r\n\r\n")
        == "400 an HTTP/1.1 request needs a Host header (RFC 9112 3.2)");
  CHECK(verdict("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        == "400 a request may have only one Host header (RFC 9112 3.2)");
  std::string many = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 99; ++i)
    many += "X-" + std::to_string(i) + ": 1\r\n";
  CHECK(verdict(many + "\r\n") == "ok"); // 100 fields
  CHECK(verdict(many + "X-Last: 1\r\n\r\n")
        == "431 a request may have at most 100 header fields");
}

TEST_CASE("the route table has one row for every route, and each pattern parses to its route",
          "[http]") {
  std::set<int> kinds;
  for (auto& spec : route_table()) {
    CHECK(kinds.insert(spec.kind).second); // one row each
    // The pattern with its placeholders filled (and its optional parts left out) is the route.
    std::string target;
    std::string_view p = spec.pattern;
    for (std::size_t i = 0; i < p.size(); ++i) {
      if (p[i] == '[') { // an optional part: left out
        i = p.find(']', i);
        continue;
      }
      if (p[i] == '{') {
        target += "x";
        i = p.find('}', i);
        continue;
      }
      target += p[i];
    }
    INFO(target);
    CHECK(parse_route(target).kind == spec.kind);
    CHECK(spec_of(spec.kind) == &spec);
  }
  CHECK(kinds.size() == static_cast<std::size_t>(route::model_instances)); // every kind but not_found
  CHECK(spec_of(route::not_found) == nullptr);
  CHECK(spec_of(route::model_infer)->method == http::verb::post);
  CHECK(spec_of(route::prometheus)->method == http::verb::get);
  CHECK(spec_of(route::shm_register)->method == http::verb::post);
}
