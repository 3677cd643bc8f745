// What the fetch stage may fetch and when it tries again (runtime/fetch_policy.hpp).
#include <catch2/catch.hpp>

#include "runtime/fetch_policy.hpp"

using namespace actorserve;

namespace {

std::array<uint8_t, 16> ip(const char* text) {
  auto a = parse_ip(text);
  REQUIRE(a);
  return *a;
}

} // namespace

TEST_CASE("address ranges parse as IPv4 or IPv6 and contain what they should", "[fetch]") {
  auto r = parse_ip_range("10.0.0.0/8");
  REQUIRE(r);
  CHECK(r->contains(ip("10.255.1.2")));
  CHECK_FALSE(r->contains(ip("11.0.0.1")));
  CHECK_FALSE(r->contains(ip("::ffff:b00:1"))); // (11.0.0.1, written as IPv6)
  CHECK(r->contains(ip("::ffff:a00:1")));       // (10.0.0.1, written as IPv6)
  auto one = parse_ip_range("192.168.1.7");
  REQUIRE(one);
  CHECK(one->contains(ip("192.168.1.7")));
  CHECK_FALSE(one->contains(ip("192.168.1.8")));
  auto v6 = parse_ip_range("fe80::/10");
  REQUIRE(v6);
  CHECK(v6->contains(ip("fe80::1")));
  CHECK(v6->contains(ip("febf::1")));
  CHECK_FALSE(v6->contains(ip("fec0::1")));
  CHECK_FALSE(parse_ip_range("10.0.0.0/33"));
  CHECK_FALSE(parse_ip_range("10.0.0.0/"));
  CHECK_FALSE(parse_ip_range("example.com"));
  CHECK(ip_text(ip("::ffff:10.1.2.3")) == "10.1.2.3");
  CHECK(ip_text(ip("::1")) == "::1");
}

TEST_CASE("the allow-list admits listed names, patterns and ranges, nothing when empty",
          "[fetch]") {
  std::vector<std::string> errors;
  fetch_allow_list none({}, errors);
  CHECK(none.empty());
  CHECK(none.refuse_address(ip("127.0.0.1"), false));

  fetch_allow_list allow({"Images.Example.com", "*.cdn.example.net", "10.0.0.0/8"}, errors);
  CHECK(errors.empty());
  CHECK(allow.host_listed("images.example.com"));
  CHECK(allow.host_listed("a.b.cdn.example.net"));
  CHECK_FALSE(allow.host_listed("cdn.example.net")); // ("*." needs a label before it)
  CHECK_FALSE(allow.host_listed("evil-images.example.com"));
  CHECK(allow.host_listed("10.1.2.3"));
  CHECK_FALSE(allow.host_listed("11.1.2.3"));
  // A listed name may resolve anywhere but the guarded ranges; an unlisted one only into ranges.
  CHECK_FALSE(allow.refuse_address(ip("93.184.216.34"), true));
  CHECK(allow.refuse_address(ip("93.184.216.34"), false)
        == "address 93.184.216.34 is in no allowed range and its host is not listed");
  CHECK_FALSE(allow.refuse_address(ip("10.9.9.9"), false));

  fetch_allow_list bad({"10.0.0.0/40", "ex ample.com", "http://x"}, errors);
  CHECK(errors.size() == 3);
  CHECK(errors[0] == "\"10.0.0.0/40\" is neither a host name, a \"*.domain\" pattern nor an "
                     "address range such as \"10.0.0.0/8\"");
}

TEST_CASE("metadata and link-local addresses need a range that names them narrowly", "[fetch]") {
  std::vector<std::string> errors;
  fetch_allow_list wide({"0.0.0.0/0", "::/0", "metadata.internal"}, errors);
  for (auto a : {"169.254.169.254", "fe80::1", "fd00:ec2::254", "100.100.100.200", "0.0.0.0"})
    CHECK(wide.refuse_address(ip(a), true)); // (even for a listed name, even under 0.0.0.0/0)
  CHECK_FALSE(wide.refuse_address(ip("8.8.8.8"), false));
  fetch_allow_list narrow({"169.254.169.254/32"}, errors);
  CHECK_FALSE(narrow.refuse_address(ip("169.254.169.254"), false));
  CHECK(narrow.refuse_address(ip("169.254.169.253"), false));
}

TEST_CASE("fetch retries transient failures with jittered, capped exponential backoff",
          "[fetch]") {
  for (long s : {0L, 408L, 429L, 500L, 502L, 503L, 504L})
    CHECK(retryable_status(s));
  for (long s : {400L, 401L, 403L, 404L, 413L, 501L})
    CHECK_FALSE(retryable_status(s));
  CHECK(retry_backoff_ns(1, 50'000'000, 1.0) == 50'000'000);
  CHECK(retry_backoff_ns(3, 50'000'000, 1.0) == 200'000'000);
  CHECK(retry_backoff_ns(3, 50'000'000, 0.5) == 100'000'000);
  CHECK(retry_backoff_ns(30, 50'000'000, 1.0) == 2'000'000'000); // (capped)
  CHECK(retry_backoff_ns(2, 50'000'000, 0.0) == 0);
}
