#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "runtime/tensor.hpp"

using namespace actorserve;

TEST_CASE("datatypes parse and print with the protocol's names", "[tensor]") {
  for (auto name :
       {"BOOL", "UINT8", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"}) {
    auto dt = parse_datatype(name);
    REQUIRE(dt);
    CHECK(to_string(*dt) == name);
  }
  CHECK_FALSE(parse_datatype("STRING"));
  CHECK_FALSE(parse_datatype("fp32"));
  CHECK(element_size(datatype::BOOL) == 1);
  CHECK(element_size(datatype::FP16) == 2);
  CHECK(element_size(datatype::INT32) == 4);
  CHECK(element_size(datatype::FP64) == 8);
}

TEST_CASE("element_count rejects negative dimensions and overflow", "[tensor]") {
  CHECK(element_count({}) == 1);
  CHECK(element_count({2, 3, 4}) == 24);
  CHECK(element_count({0, 5}) == 0);
  CHECK_FALSE(element_count({-1, 4}));
  CHECK_FALSE(element_count({std::numeric_limits<int64_t>::max(), 2}));
}

TEST_CASE("a tensor is consistent only when its bytes match shape and datatype", "[tensor]") {
  tensor t;
  t.dtype = datatype::INT16;
  t.shape = {2, 3};
  t.data.resize(12);
  CHECK(t.consistent());
  t.data.resize(11);
  CHECK_FALSE(t.consistent());
  // A shape whose byte count would wrap (2^62 FP32 elements: 2^64 bytes, 0 in 64 bits) is never
  // consistent, not even with no bytes.
  tensor wrap;
  wrap.dtype = datatype::FP32;
  wrap.shape = {1, int64_t{1} << 62};
  CHECK_FALSE(wrap.consistent());
}

TEST_CASE("tensor byte counts are checked: at most 2^40 elements, never a wrapped product",
          "[tensor]") {
  CHECK(tensor_bytes({2, 3}, datatype::FP32) == 24u);
  CHECK(tensor_bytes({max_tensor_elements}, datatype::FP64) == uint64_t{8} << 40);
  CHECK_FALSE(tensor_bytes({max_tensor_elements + 1}, datatype::UINT8));
  CHECK_FALSE(tensor_bytes({1, int64_t{1} << 62}, datatype::FP32));
  CHECK_FALSE(tensor_bytes({-1}, datatype::FP32));
}

TEST_CASE("half precision conversion rounds to nearest even and keeps specials", "[tensor]") {
  CHECK(float_to_half(0.0f) == 0x0000);
  CHECK(float_to_half(-0.0f) == 0x8000);
  CHECK(float_to_half(1.0f) == 0x3c00);
  CHECK(float_to_half(-2.5f) == 0xc100);
  CHECK(float_to_half(65504.0f) == 0x7bff);
  CHECK(float_to_half(1e6f) == 0x7c00); // overflow to infinity
  CHECK(float_to_half(std::numeric_limits<float>::infinity()) == 0x7c00);
  CHECK((float_to_half(std::nanf("")) & 0x7c00) == 0x7c00);
  CHECK(float_to_half(5.9604645e-8f) == 0x0001); // smallest subnormal
  CHECK(float_to_half(1.0f + 1.0f / 2048) == 0x3c00); // tie rounds to even
  CHECK(float_to_half(1.0f + 3.0f / 2048) == 0x3c02);
  for (float x : {0.5f, 1.0f, -3.25f, 1000.0f, 6.1035156e-5f, 5.9604645e-8f, 65504.0f})
    CHECK(half_to_float(float_to_half(x)) == x);
  CHECK(std::isinf(half_to_float(0x7c00)));
  CHECK(std::isnan(half_to_float(0x7e00)));
}
