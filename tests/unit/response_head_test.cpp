#include <catch2/catch.hpp>

#include <string>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "net/http/response_head.hpp"

using namespace actorserve;
namespace http = boost::beast::http;

namespace {

/// Beast's parser reads what the head and `body` make: the message, or the parse error.
http::response<http::string_body> parse(const std::string& head, const std::string& body,
                                        bool head_request = false) {
  http::response_parser<http::string_body> p;
  p.skip(head_request);
  p.eager(true);
  boost::beast::error_code ec;
  auto wire = head + body;
  auto used = p.put(boost::asio::buffer(wire), ec);
  REQUIRE_FALSE(ec);
  REQUIRE(used == wire.size());
  REQUIRE(p.is_done());
  return p.release();
}

} // namespace

TEST_CASE("response_head writes a head Beast's parser reads back field for field", "[http]") {
  std::string out = "what the previous answer left";
  response_head{out, 503, 11}
    .field("Server", "actorserve/0.1")
    .field("Content-Type", "application/json")
    .field("Inference-Header-Content-Length", std::size_t{42})
    .field("Retry-After", "1")
    .finish(17, true);
  auto res = parse(out, R"({"error":"busy"})" "\n");
  CHECK(res.result() == http::status::service_unavailable);
  CHECK(res.reason() == "Service Unavailable");
  CHECK(res.version() == 11);
  CHECK(res[http::field::server] == "actorserve/0.1");
  CHECK(res[http::field::content_type] == "application/json");
  CHECK(res["Inference-Header-Content-Length"] == "42");
  CHECK(res[http::field::retry_after] == "1");
  CHECK(res[http::field::content_length] == "17");
  CHECK(res.body() == "{\"error\":\"busy\"}\n");
  CHECK(res.keep_alive());
  CHECK(res.count(http::field::connection) == 0); // (HTTP/1.1 keeps the connection by default)
}

TEST_CASE("response_head says what the version needs to keep or close the connection", "[http]") {
  std::string out;
  SECTION("HTTP/1.1, closing") {
    response_head{out, 200, 11}.finish(0, false);
    auto res = parse(out, "");
    CHECK(out.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK_FALSE(res.keep_alive());
    CHECK(res[http::field::connection] == "close");
  }
  SECTION("HTTP/1.0, kept") {
    response_head{out, 404, 10}.finish(2, true);
    auto res = parse(out, "{}");
    CHECK(out.rfind("HTTP/1.0 404 Not Found\r\n", 0) == 0);
    CHECK(res.keep_alive());
    CHECK(res[http::field::connection] == "keep-alive");
  }
  SECTION("HTTP/1.0, closing") {
    response_head{out, 200, 10}.finish(2, false);
    auto res = parse(out, "{}");
    CHECK_FALSE(res.keep_alive());
    CHECK(res.count(http::field::connection) == 0);
  }
}

TEST_CASE("response_head answers a HEAD request with the length of the body it leaves out",
          "[http]") {
  std::string out;
  response_head{out, 200, 11}.field("Content-Type", "application/json").finish(210, true);
  auto res = parse(out, "", true);
  CHECK(res[http::field::content_length] == "210");
  CHECK(res.body().empty());
  CHECK(out.substr(out.size() - 4) == "\r\n\r\n");
}
