// The HTTP front's bounds on connections, in all and per client address.
#include <catch2/catch.hpp>

#include "net/http/connection_limits.hpp"

using namespace actorserve;

TEST_CASE("connections past the bound per client address are refused, others' are not",
          "[http][hardening]") {
  connection_limits l{10, 2};
  CHECK_FALSE(l.admit("10.0.0.1"));
  CHECK_FALSE(l.admit("10.0.0.1"));
  auto refused = l.admit("10.0.0.1");
  REQUIRE(refused);
  CHECK(*refused == "client 10.0.0.1 holds 2 connections, the limit for one address "
                    "(http.max_connections_per_client)");
  CHECK_FALSE(l.admit("10.0.0.2"));
  CHECK(l.open() == 3);
  l.release("10.0.0.1"); // one closes: that client may open one again
  CHECK_FALSE(l.admit("10.0.0.1"));
  CHECK(l.admit("10.0.0.1"));
}

TEST_CASE("connections past the total bound are refused whoever opens them", "[http][hardening]") {
  connection_limits l{3, 0};
  for (auto c : {"a", "b", "c"})
    CHECK_FALSE(l.admit(c));
  auto refused = l.admit("d");
  REQUIRE(refused);
  CHECK(*refused == "the server holds 3 connections, its limit (http.max_connections)");
  l.release("b");
  CHECK_FALSE(l.admit("d"));
  l.release("never-admitted"); // (a release without an admit changes nothing)
  CHECK(l.open() == 3);
}

TEST_CASE("connection bounds of 0 bound nothing", "[http][hardening]") {
  connection_limits l{0, 0};
  for (int i = 0; i < 10'000; ++i)
    REQUIRE_FALSE(l.admit("one"));
  CHECK(l.open() == 10'000);
}
