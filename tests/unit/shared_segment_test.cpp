#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstring>

#include "runtime/shared_segment.hpp"

using namespace actorserve;

TEST_CASE("shared memory hands out aligned ranges first fit and takes them back",
          "[shared_segment]") {
  auto seg = shared_segment::create(1024);
  REQUIRE(seg->size() == 1024);
  CHECK(seg->fd() >= 0);
  auto a = seg->allocate(100); // 128 with alignment
  auto b = seg->allocate(64);
  auto c = seg->allocate(1);
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(c);
  CHECK(*a == 0);
  CHECK(*b == 128);
  CHECK(*c == 192);
  CHECK(seg->in_use() == 256);
  CHECK_FALSE(seg->allocate(1024 - 256 + 1)); // larger than what is left
  seg->release(*b);
  CHECK(seg->allocate(64) == std::optional<std::size_t>{128}); // the freed range, first
  CHECK(seg->allocate(700) == std::optional<std::size_t>{256}); // 704 bytes: up to 960
  CHECK_FALSE(seg->allocate(128));                              // 64 bytes left
  CHECK(seg->allocate(64) == std::optional<std::size_t>{960});
  seg->release(12345);                // unknown: ignored
  seg->release(*a);
  seg->release(*c);
  // Gaps now: [0, 128) and [192, 256).
  CHECK_FALSE(seg->allocate(150)); // 192 bytes fit in neither
  CHECK(seg->allocate(100) == std::optional<std::size_t>{0});
  CHECK(seg->allocate(0) == std::optional<std::size_t>{192}); // an empty range takes 64 too
  CHECK_FALSE(seg->allocate(1));
  CHECK(seg->in_use() == 1024);
}

TEST_CASE("another mapping of the descriptor sees the same bytes, as the worker process does",
          "[shared_segment]") {
  auto seg = shared_segment::create(4096);
  auto at = seg->allocate(11);
  REQUIRE(at);
  std::memcpy(seg->data() + *at, "hello child", 11);
  auto other = shared_segment::attach(::dup(seg->fd()), seg->size());
  CHECK(other->fd() == -1); // the attached side keeps no descriptor
  CHECK(std::memcmp(other->data() + *at, "hello child", 11) == 0);
  other->data()[*at] = 'H';
  CHECK(seg->data()[*at] == 'H');
  CHECK_THROWS_WITH(shared_segment::create(0), Catch::Contains("needs a size"));
}
