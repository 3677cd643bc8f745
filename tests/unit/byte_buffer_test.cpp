#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include <caf/all.hpp>

#include "runtime/byte_buffer.hpp"

using namespace actorserve;

TEST_CASE("a copied byte_buffer shares its bytes until one copy writes", "[byte_buffer]") {
  byte_buffer a{1, 2, 3, 4};
  CHECK_FALSE(a.shared());
  byte_buffer b = a;
  CHECK(b.data() == a.data()); // no copy
  CHECK(a.shared());
  b.mutable_data()[0] = 9;     // b gets its own bytes; a is unchanged
  CHECK(b.data() != a.data());
  CHECK(a == std::vector<uint8_t>{1, 2, 3, 4});
  CHECK(b == std::vector<uint8_t>{9, 2, 3, 4});
  CHECK_FALSE(a.shared());
  auto* p = a.mutable_data(); // the only holder: written in place
  CHECK(p == a.data());
}

TEST_CASE("a view keeps its owner alive and is copied before it is written", "[byte_buffer]") {
  std::weak_ptr<std::string> watch;
  byte_buffer v;
  {
    auto body = std::make_shared<std::string>("header:ABCDEF");
    watch = body;
    v = byte_buffer::view(body, reinterpret_cast<const uint8_t*>(body->data()) + 7, 6);
  }
  CHECK_FALSE(watch.expired()); // the view holds the body
  CHECK(v == std::vector<uint8_t>{'A', 'B', 'C', 'D', 'E', 'F'});
  CHECK(v.shared());
  auto s = v.slice(2, 3);
  CHECK(s == std::vector<uint8_t>{'C', 'D', 'E'});
  v.mutable_data()[0] = 'Z'; // copies: the body is never written
  CHECK(v == std::vector<uint8_t>{'Z', 'B', 'C', 'D', 'E', 'F'});
  CHECK(s == std::vector<uint8_t>{'C', 'D', 'E'});
  CHECK_FALSE(watch.expired()); // the slice still holds it
  s = byte_buffer{};
  CHECK(watch.expired());
  CHECK_THROWS_AS(v.slice(4, 3), std::out_of_range);
}

TEST_CASE("byte_buffer resizes, assigns and moves like a vector", "[byte_buffer]") {
  byte_buffer a{1, 2, 3};
  auto shared = a;
  a.resize(5); // copies (shared), keeps the prefix, zero-fills
  CHECK(a == std::vector<uint8_t>{1, 2, 3, 0, 0});
  CHECK(shared == std::vector<uint8_t>{1, 2, 3});
  a.resize(2);
  CHECK(a == std::vector<uint8_t>{1, 2});
  a.assign(3, 7);
  CHECK(a == std::vector<uint8_t>{7, 7, 7});
  const uint8_t src[] = {4, 5};
  a.assign(src, src + 2);
  CHECK(a == byte_buffer{4, 5});
  CHECK(a != shared);
  byte_buffer moved = std::move(a);
  CHECK(moved == std::vector<uint8_t>{4, 5});
  CHECK(a.empty()); // NOLINT: moved-from is empty, not dangling
  CHECK(a.data() == nullptr);
  a.resize(0);
  CHECK(a.mutable_data() == nullptr);
}

TEST_CASE("byte_buffer is serialized exactly as a byte vector", "[byte_buffer]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::vector<uint8_t> bytes(70'000);
  for (std::size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<uint8_t>(i * 7);
  auto body = std::make_shared<std::vector<uint8_t>>(bytes);
  // A view, a slice and an own buffer all encode like the vector itself.
  for (auto& b : {byte_buffer::view(body, body->data(), body->size()), byte_buffer{bytes}.slice(0, 70'000),
                  byte_buffer{bytes}}) {
    std::vector<char> as_buffer, as_vector;
    caf::binary_serializer s1{sys, as_buffer};
    auto copy = b;
    REQUIRE_FALSE(s1(copy));
    caf::binary_serializer s2{sys, as_vector};
    auto v = bytes;
    REQUIRE_FALSE(s2(v));
    CHECK(as_buffer == as_vector);
    byte_buffer back{9, 9};
    caf::binary_deserializer d{sys, as_buffer};
    REQUIRE_FALSE(d(back));
    CHECK(back == bytes);
  }
  byte_buffer empty;
  std::vector<char> buf;
  caf::binary_serializer s{sys, buf};
  REQUIRE_FALSE(s(empty));
  byte_buffer back{1};
  caf::binary_deserializer d{sys, buf};
  REQUIRE_FALSE(d(back));
  CHECK(back.empty());
}

TEST_CASE("copies on other threads keep their bytes while one copy writes", "[byte_buffer]") {
  std::vector<uint8_t> pattern(1 << 20);
  for (std::size_t i = 0; i < pattern.size(); ++i)
    pattern[i] = static_cast<uint8_t>(i % 253);
  byte_buffer original{pattern};
  std::atomic<bool> go{false};
  std::atomic<int> mismatches{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t)
    readers.emplace_back([copy = original, &go, &mismatches, &pattern] {
      while (!go.load())
        std::this_thread::yield();
      for (int round = 0; round < 20; ++round)
        if (!(copy == pattern))
          ++mismatches;
    });
  go = true;
  for (int round = 0; round < 20; ++round) { // a writer that shares the bytes with the readers
    auto writer = original;
    std::fill(writer.mutable_data(), writer.mutable_data() + writer.size(), uint8_t{0xAB});
    CHECK(writer[12345] == 0xAB);
  }
  for (auto& r : readers)
    r.join();
  CHECK(mismatches == 0);
  CHECK(original == pattern);
}
