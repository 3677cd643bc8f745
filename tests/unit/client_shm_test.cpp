// Triton's system shared memory extension: regions, their registry, and requests whose inputs
// and outputs live in them (net/kserve/client_shm, net/kserve/json_codec).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "net/kserve/client_shm.hpp"
#include "net/http/peer_uid.hpp"
#include "net/kserve/json_codec.hpp"
#include "runtime/error.hpp"
#include "test_support.hpp"

using namespace actorserve;

namespace {

/// A POSIX shared memory object for one test, as a client makes it; unlinked at the end.
struct shm_object {
  std::string key;
  int fd = -1;
  explicit shm_object(std::size_t size) {
    static std::atomic<int> n{0};
    key = "/actorserve-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
    fd = ::shm_open(key.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, static_cast<off_t>(size)) == 0);
  }
  ~shm_object() {
    ::close(fd);
    ::shm_unlink(key.c_str());
  }
  void put(std::size_t at, const void* p, std::size_t n) const {
    REQUIRE(::pwrite(fd, p, n, static_cast<off_t>(at)) == static_cast<ssize_t>(n));
  }
  std::vector<uint8_t> get(std::size_t at, std::size_t n) const {
    std::vector<uint8_t> out(n);
    REQUIRE(::pread(fd, out.data(), n, static_cast<off_t>(at)) == static_cast<ssize_t>(n));
    return out;
  }
};

std::string input_in(const std::string& region, uint64_t size, uint64_t offset = 0,
                     const std::string& extra = "") {
  return R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"parameters":{)"
         R"("shared_memory_region":")" + region + R"(","shared_memory_byte_size":)"
         + std::to_string(size)
         + (offset ? R"(,"shared_memory_offset":)" + std::to_string(offset) : std::string())
         + "}" + extra + "}]}";
}

std::string error_of(const caf::expected<kserve::decoded_request>& r) {
  REQUIRE_FALSE(r);
  return error_message(r.error());
}

} // namespace

TEST_CASE("regions register by name, list, refuse duplicates and bad keys, and unregister",
          "[shm]") {
  shm_object obj{4096};
  shm_registry reg;
  REQUIRE(reg.add("in", obj.key, 0, 1024));
  REQUIRE(reg.add("out", obj.key, 1024, 3072));
  CHECK(shm_status_json(reg.list())
        == R"([{"name":"in","key":")" + obj.key + R"(","offset":0,"byte_size":1024},)"
             R"({"name":"out","key":")" + obj.key + R"(","offset":1024,"byte_size":3072}])");
  CHECK(error_message(reg.add("in", obj.key, 0, 8).error())
        == "shared memory region 'in' is already registered; unregister it first");
  CHECK(error_message(reg.add("past", obj.key, 4000, 100).error())
        == "shared memory region 'past': offset 4000 + byte_size 100 passes the end of \""
             + obj.key + "\" (4096 bytes)");
  CHECK(error_message(reg.add("huge", obj.key, 1, ~uint64_t{0}).error()).find("passes the end")
        != std::string::npos); // (no overflow)
  CHECK(error_message(reg.add("none", "/actorserve-no-such-object", 0, 8).error())
        == "shared memory region 'none': cannot open shared memory object "
           "\"/actorserve-no-such-object\": No such file or directory");
  CHECK(error_message(reg.add("rel", "no-slash", 0, 8).error()).find("is not a POSIX shared memory name")
        != std::string::npos);
  CHECK(error_message(reg.add("dir", "/a/b", 0, 8).error()).find("is not a POSIX shared memory name")
        != std::string::npos);
  CHECK(error_message(reg.add("empty", obj.key, 0, 0).error())
        == "shared memory region 'empty': byte_size must be at least 1");
  CHECK(error_message(reg.add("", obj.key, 0, 8).error())
        == "a shared memory region's name must be 1 to 256 bytes of UTF-8");
  CHECK(error_message(reg.find("nope").error()) == "no shared memory region 'nope' is registered");
  CHECK(reg.remove("nope").empty());
  CHECK(reg.remove("in") == std::vector<std::string>{"in"});
  CHECK(reg.list().size() == 1);
  REQUIRE(reg.add("in", obj.key, 0, 8)); // (the name is free again)
  CHECK(reg.remove("") == std::vector<std::string>{"in", "out"});
  CHECK(reg.list().empty());
}

TEST_CASE("only keys that start with an allowed prefix are registered", "[shm][hardening]") {
  shm_object obj{64}; // "/actorserve-test-..."
  shm_registry reg{{"/triton_", "/actorserve-test-"}};
  CHECK(reg.add("mine", obj.key, 0, 8));
  shm_registry strict{{"/triton_"}};
  auto refused = strict.add("other", obj.key, 0, 8);
  REQUIRE_FALSE(refused);
  CHECK(error_code(refused.error()) == errc::invalid_input);
  CHECK(error_message(refused.error())
        == "shared memory region 'other': key \"" + obj.key + "\" does not start with one the "
           "server takes (\"/triton_\"; http.shared_memory_key_prefixes)");
  CHECK(strict.list().empty());
}

TEST_CASE("with an owner, only that user's objects are registered", "[shm][hardening]") {
  shm_object obj{64}; // made by this test's user
  shm_registry reg;
  CHECK(reg.add("mine", obj.key, 0, 8, ::geteuid()));
  auto other = ::geteuid() + 1000;
  auto refused = reg.add("theirs", obj.key, 0, 8, other);
  REQUIRE_FALSE(refused);
  CHECK(error_message(refused.error())
        == "shared memory region 'theirs': \"" + obj.key + "\" belongs to user "
             + std::to_string(::geteuid()) + ", not to the client (user " + std::to_string(other)
             + "): a client registers only its own objects (http.shared_memory_owner_check)");
}

TEST_CASE("a connection's client user is found in the kernel's socket table", "[shm][hardening]") {
  // /proc/net/tcp as the kernel writes it: the client's socket 127.0.0.1:38514 -> :42455 (uid
  // 1001) and the server's own end of it (uid 0).
  const std::string table =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000:A5D7 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 197 1\n"
    "   1: 0100007F:9672 0100007F:A5D7 01 00000000:00000000 00:00000000 00000000  1001        0 5 1\n"
    "   2: 0100007F:A5D7 0100007F:9672 01 00000000:00000000 00:00000000 00000000     0        0 6 1\n";
  CHECK(socket_owner_in(table, 0x9672, 0xA5D7) == uid_t{1001});
  CHECK(socket_owner_in(table, 0xA5D7, 0x9672) == uid_t{0});
  CHECK_FALSE(socket_owner_in(table, 0x9673, 0xA5D7));
  CHECK_FALSE(socket_owner_in("", 1, 2));
  CHECK_FALSE(socket_owner_in("header only", 1, 2));
}

TEST_CASE("an input in shared memory is read from its region at its offset", "[shm]") {
  shm_object obj{256};
  const float x[4] = {1.5f, -2, 3, 4.25f};
  obj.put(64 + 16, x, sizeof x);
  shm_registry reg;
  REQUIRE(reg.add("in", obj.key, 64, 128));
  auto r = kserve::decode_request(input_in("in", 16, 16), std::nullopt, {}, nullptr, &reg);
  REQUIRE(r);
  auto& t = r->request.inputs.at(0);
  REQUIRE(t.data.size() == 16);
  CHECK(std::memcmp(t.data.data(), x, 16) == 0);
  // The bytes were copied when the request was read: what the client writes later is not seen.
  const float y[4] = {};
  obj.put(64 + 16, y, sizeof y);
  CHECK(std::memcmp(t.data.data(), x, 16) == 0);
}

TEST_CASE("shared memory requests that are wrong get errors that say what is wrong", "[shm]") {
  shm_object obj{128};
  shm_registry reg;
  REQUIRE(reg.add("in", obj.key, 0, 64));
  auto decode = [&](const std::string& body, const shm_registry* r) {
    return kserve::decode_request(body, std::nullopt, {}, nullptr, r);
  };
  CHECK(error_of(decode(input_in("in", 16), nullptr))
        == "input 'x': shared memory is not enabled on this server (its deployment's "
           "server.http.allow_shared_memory)");
  CHECK(error_of(decode(input_in("other", 16), &reg))
        == "input 'x': no shared memory region 'other' is registered");
  CHECK(error_of(decode(input_in("in", 12), &reg))
        == "input 'x': shared_memory_byte_size 12 does not match shape [1, 4] of FP32 (16 bytes)");
  CHECK(error_of(decode(input_in("in", 16, 56), &reg))
        == "input 'x': shared_memory_offset 56 + shared_memory_byte_size 16 passes the end of "
           "region 'in' (64 bytes)");
  CHECK(error_of(decode(input_in("in", 16, 0, R"(,"data":[1,2,3,4])"), &reg))
        == "input 'x': has shared memory and also 'data'; give one");
  CHECK(error_of(decode(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],)"
                        R"("parameters":{"shared_memory_region":"in"}}]})",
                        &reg))
        == "input 'x': shared memory needs both shared_memory_region and shared_memory_byte_size");
  CHECK(error_of(decode(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"parameters":)"
                        R"({"shared_memory_region":"in","shared_memory_byte_size":-16}}]})",
                        &reg))
        == "input 'x': shared_memory_byte_size must be a non-negative integer, got an integer (-16)");
  // An output: its region must exist and take the room asked for.
  auto output_to = [&](const std::string& region, uint64_t size) {
    return R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}],)"
           R"("outputs":[{"name":"y","parameters":{"shared_memory_region":")"
           + region + R"(","shared_memory_byte_size":)" + std::to_string(size) + "}}]}";
  };
  CHECK(error_of(decode(output_to("gone", 16), &reg))
        == "output 'y': no shared memory region 'gone' is registered");
  CHECK(error_of(decode(output_to("in", 65), &reg))
        == "output 'y': shared_memory_offset 0 + shared_memory_byte_size 65 passes the end of "
           "region 'in' (64 bytes)");
}

TEST_CASE("an object truncated after registration is an error, not a crash", "[shm]") {
  // Through a mapping, reading past the object's new end would be SIGBUS for the whole node.
  shm_object obj{4096};
  shm_registry reg;
  REQUIRE(reg.add("in", obj.key, 0, 4096));
  REQUIRE(::ftruncate(obj.fd, 8) == 0);
  auto r = kserve::decode_request(input_in("in", 16), std::nullopt, {}, nullptr, &reg);
  CHECK(error_of(r) == "input 'x': shared memory region 'in' ends after 8 of its registered 4096 "
                       "bytes: \"" + obj.key + "\" was truncated since it was registered");
  auto region = *reg.find("in");
  const uint8_t bytes[16] = {};
  CHECK(error_message(region->write(0, bytes, 16, "output 'y'"))
        == "output 'y': shared memory region 'in' no longer holds its registered 4096 bytes: \""
             + obj.key + "\" was truncated since it was registered");
}

TEST_CASE("bytes read from shared memory count in the request byte budget while held", "[shm]") {
  shm_object obj{1 << 20};
  shm_registry reg;
  REQUIRE(reg.add("in", obj.key, 0, 1 << 20));
  auto region = *reg.find("in");
  std::atomic<uint64_t> used{1000};
  {
    auto a = region->read(0, 4096, "input 'a'", &used, 10'000, 0);
    REQUIRE(a);
    CHECK(used == 5096);
    auto copy = *a; // (shared, counted once)
    CHECK(used == 5096);
    auto b = region->read(0, 8192, "input 'b'", &used, 10'000, 0);
    REQUIRE_FALSE(b);
    CHECK(error_code(b.error()) == errc::overloaded);
    CHECK(used == 5096);
    auto c = region->read(0, 20'000, "input 'c'", &used, 10'000, 0);
    REQUIRE_FALSE(c);
    CHECK(error_code(c.error()) == errc::payload_too_large);
  }
  CHECK(used == 1000);
}

TEST_CASE("outputs asked for in shared memory are written there and described, not sent",
          "[shm]") {
  shm_object obj{256};
  shm_registry reg;
  REQUIRE(reg.add("out", obj.key, 128, 128));
  auto req = kserve::decode_request(
    R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[1,2]}],"outputs":[)"
    R"({"name":"y","parameters":{"shared_memory_region":"out","shared_memory_byte_size":64,)"
    R"("shared_memory_offset":32,"binary_data":false}},{"name":"z"}]})",
    std::nullopt, {}, nullptr, &reg);
  REQUIRE(req);
  REQUIRE(req->shm_outputs.size() == 1);
  infer_response res;
  res.model = "m";
  res.version = "1";
  auto y = test::fp32("y", {1, 2}, {7.5f, -1});
  const float values[2] = {7.5f, -1};
  tensor z = y;
  z.name = "z";
  res.outputs = {y, z};
  REQUIRE_FALSE(kserve::write_shm_outputs(res, *req));
  auto written = obj.get(128 + 32, 8);
  CHECK(std::memcmp(written.data(), values, 8) == 0);
  auto enc = kserve::encode_response(res, *req);
  CHECK(enc.body.find(R"({"name":"y","datatype":"FP32","shape":[1,2],"parameters":{)"
                      R"("shared_memory_region":"out","shared_memory_byte_size":8,)"
                      R"("shared_memory_offset":32}})")
        != std::string::npos);
  INFO(enc.body);
  CHECK(enc.body.find(R"({"name":"z","datatype":"FP32","shape":[1,2],"data":[7.5,-1]})")
        != std::string::npos);
  // An output larger than the room its request gave it is an error that names both sizes.
  y.shape = {1, 20};
  y.data = byte_buffer(80, 0);
  res.outputs = {y};
  CHECK(error_message(kserve::write_shm_outputs(res, *req))
        == "output 'y': its 80 bytes (shape [1, 20]) do not fit the shared_memory_byte_size 64 "
           "the request gave it");
  // binary_data true and shared memory exclude each other.
  auto both = kserve::decode_request(
    R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[1,2]}],"outputs":[)"
    R"({"name":"y","parameters":{"shared_memory_region":"out","shared_memory_byte_size":8,)"
    R"("binary_data":true}}]})",
    std::nullopt, {}, nullptr, &reg);
  CHECK(error_of(both) == "output 'y': has shared memory and also binary_data true; give one");
}
