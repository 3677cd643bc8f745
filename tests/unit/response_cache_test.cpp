#include <catch2/catch.hpp>

#include <cstring>

#include "runtime/response_cache.hpp"

using namespace actorserve;

namespace {

tensor fp32(const std::string& name, std::vector<float> values) {
  tensor t;
  t.name = name;
  t.dtype = datatype::FP32;
  t.shape = {1, static_cast<int64_t>(values.size())};
  t.data.assign(reinterpret_cast<const uint8_t*>(values.data()),
                reinterpret_cast<const uint8_t*>(values.data() + values.size()));
  return t;
}

std::vector<float> values_of(const tensor& t) {
  std::vector<float> v(t.data.size() / 4);
  std::memcpy(v.data(), t.data.data(), t.data.size());
  return v;
}

} // namespace

TEST_CASE("an answer is found again only for exactly the same inputs and outputs", "[cache]") {
  response_cache cache{1 << 20};
  auto key = response_cache::make_key({fp32("x", {1, 2, 3, 4})}, {});
  CHECK_FALSE(cache.find(key));
  cache.insert(key, {fp32("y", {3, 5, 7, 9})});
  auto hit = cache.find(response_cache::make_key({fp32("x", {1, 2, 3, 4})}, {}));
  REQUIRE(hit);
  REQUIRE(hit->size() == 1);
  CHECK((*hit)[0].name == "y");
  CHECK(values_of((*hit)[0]) == std::vector<float>{3, 5, 7, 9});
  // Any difference is a miss: a byte, the name, the datatype, the shape, the outputs asked for.
  CHECK_FALSE(cache.find(response_cache::make_key({fp32("x", {1, 2, 3, 5})}, {})));
  CHECK_FALSE(cache.find(response_cache::make_key({fp32("z", {1, 2, 3, 4})}, {})));
  auto as_int = fp32("x", {1, 2, 3, 4});
  as_int.dtype = datatype::INT32;
  CHECK_FALSE(cache.find(response_cache::make_key({as_int}, {})));
  auto reshaped = fp32("x", {1, 2, 3, 4});
  reshaped.shape = {2, 2};
  CHECK_FALSE(cache.find(response_cache::make_key({reshaped}, {})));
  CHECK_FALSE(cache.find(response_cache::make_key({fp32("x", {1, 2, 3, 4})}, {"y"})));
  CHECK_FALSE(
    cache.find(response_cache::make_key({fp32("x", {1, 2, 3, 4}), fp32("w", {0})}, {})));
  CHECK(cache.entries() == 1);
}

TEST_CASE("keys that collide in their hash are told apart by their bytes", "[cache]") {
  response_cache cache{1 << 20};
  auto a = response_cache::make_key({fp32("x", {1})}, {});
  auto b = response_cache::make_key({fp32("x", {2})}, {});
  b.hash = a.hash; // (as if an attacker had found a collision)
  cache.insert(a, {fp32("y", {10})});
  CHECK_FALSE(cache.find(b));
  cache.insert(b, {fp32("y", {20})});
  CHECK(values_of(cache.find(a)->at(0)) == std::vector<float>{10});
  CHECK(values_of(cache.find(b)->at(0)) == std::vector<float>{20});
}

TEST_CASE("the cache keeps copies, not slices of a batch's buffer", "[cache]") {
  // A response's outputs are slices of its whole batch's output: kept as they are, one small
  // entry would keep the whole batch alive.
  auto batch = fp32("y", std::vector<float>(1024, 1.5f));
  tensor slice = batch;
  slice.shape = {1, 4};
  slice.data = batch.data.slice(16, 16);
  response_cache cache{1 << 20};
  auto key = response_cache::make_key({fp32("x", {1})}, {});
  cache.insert(key, {slice});
  auto hit = cache.find(key);
  REQUIRE(hit);
  CHECK(values_of(hit->at(0)) == std::vector<float>{1.5f, 1.5f, 1.5f, 1.5f});
  CHECK(hit->at(0).data.data() != slice.data.data());
  CHECK(cache.bytes() < 1024); // 16 + 4 bytes of tensors and the entries' overhead, not 4 KB
}

TEST_CASE("past its bound the least recently used answers go first", "[cache]") {
  auto key_of = [](float v) { return response_cache::make_key({fp32("x", {v})}, {}); };
  auto big = [](float v) { return std::vector<tensor>{fp32("y", std::vector<float>(250, v))}; };
  response_cache probe{1 << 20};
  probe.insert(key_of(0), big(0));
  const auto entry = probe.bytes(); // one entry's bytes, overhead included
  response_cache cache{entry * 3};
  cache.insert(key_of(1), big(1));
  cache.insert(key_of(2), big(2));
  cache.insert(key_of(3), big(3));
  CHECK(cache.entries() == 3);
  CHECK(cache.bytes() == 3 * entry);
  REQUIRE(cache.find(key_of(1))); // 1 is now the most recently used; 2 the least
  cache.insert(key_of(4), big(4));
  CHECK(cache.entries() == 3);
  CHECK(cache.evictions() == 1);
  CHECK_FALSE(cache.find(key_of(2)));
  CHECK(cache.find(key_of(1)));
  CHECK(cache.find(key_of(3)));
  CHECK(cache.find(key_of(4)));
  // An answer larger than the whole bound is not stored (and evicts nothing).
  cache.insert(key_of(5), {fp32("y", std::vector<float>(100'000, 5))});
  CHECK_FALSE(cache.find(key_of(5)));
  CHECK(cache.entries() == 3);
  // Storing the same key again keeps the first answer.
  cache.insert(key_of(4), big(40));
  CHECK(values_of(cache.find(key_of(4))->at(0))[0] == 4);
  CHECK(cache.bytes() == 3 * entry);
}
