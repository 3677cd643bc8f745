#include "runtime/tensor.hpp"

#include <array>
#include <cstring>
#include <limits>

namespace actorserve {

namespace {

constexpr std::array<std::string_view, 10> datatype_names{
  "BOOL", "UINT8", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"};
constexpr std::array<std::size_t, 10> datatype_sizes{1, 1, 1, 2, 4, 8, 2, 4, 8, 4};

} // namespace

const char* const datatype_list = "BOOL, UINT8, INT8, INT16, INT32, INT64, FP16, FP32, FP64 or BYTES";

std::optional<datatype> parse_datatype(std::string_view name) {
  for (std::size_t i = 0; i < datatype_names.size(); ++i)
    if (datatype_names[i] == name)
      return static_cast<datatype>(i);
  return std::nullopt;
}

std::string_view to_string(datatype x) {
  return datatype_names[static_cast<std::size_t>(x)];
}

std::size_t element_size(datatype x) {
  return datatype_sizes[static_cast<std::size_t>(x)];
}

std::optional<int64_t> element_count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto d : shape) {
    if (d < 0)
      return std::nullopt;
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      return std::nullopt;
    n *= d;
  }
  return n;
}

std::string shape_to_string(const std::vector<int64_t>& shape, std::string_view separator) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0)
      out += separator;
    out += std::to_string(shape[i]);
  }
  out += "]";
  return out;
}

std::optional<uint64_t> tensor_bytes(const std::vector<int64_t>& shape, datatype dt) {
  auto n = element_count(shape);
  if (!n || *n > max_tensor_elements)
    return std::nullopt;
  return static_cast<uint64_t>(*n) * element_size(dt);
}

std::optional<std::vector<std::string_view>> bytes_elements(std::string_view data, int64_t count) {
  // (Each element takes at least 4 bytes: a count beyond that cannot be right, and is not
  // reserved for.)
  if (count < 0 || static_cast<uint64_t>(count) > data.size() / 4)
    return std::nullopt;
  std::vector<std::string_view> out;
  out.reserve(static_cast<std::size_t>(count));
  std::size_t at = 0;
  for (int64_t i = 0; i < count; ++i) {
    if (data.size() - at < 4)
      return std::nullopt;
    uint32_t len;
    std::memcpy(&len, data.data() + at, 4); // (little-endian hosts only, as the codecs)
    at += 4;
    if (data.size() - at < len)
      return std::nullopt;
    out.push_back(data.substr(at, len));
    at += len;
  }
  if (at != data.size())
    return std::nullopt;
  return out;
}

void append_bytes_element(std::vector<uint8_t>& out, std::string_view element) {
  auto len = static_cast<uint32_t>(element.size());
  auto at = out.size();
  out.resize(at + 4 + element.size());
  std::memcpy(out.data() + at, &len, 4);
  if (!element.empty())
    std::memcpy(out.data() + at + 4, element.data(), element.size());
}

bool tensor::consistent() const {
  auto bytes = tensor_bytes(shape, dtype);
  if (!bytes)
    return false;
  if (dtype != datatype::BYTES)
    return *bytes == data.size();
  return bytes_elements(view(), *element_count(shape)).has_value();
}

uint16_t float_to_half(float value) {
  uint32_t f;
  std::memcpy(&f, &value, sizeof f);
  uint32_t sign = (f >> 16) & 0x8000u;
  uint32_t exp = (f >> 23) & 0xffu;
  uint32_t mant = f & 0x7fffffu;
  if (exp == 0xff) // inf or NaN (keep NaN quiet)
    return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u));
  int32_t e = static_cast<int32_t>(exp) - 127 + 15;
  if (e >= 0x1f) // overflow: infinity
    return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) { // subnormal or zero
    if (e < -10)
      return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half_mant = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half_mant & 1u)))
      ++half_mant;
    return static_cast<uint16_t>(sign | half_mant);
  }
  uint32_t half = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u)))
    ++half; // may carry into the exponent, which is the correct rounding
  return static_cast<uint16_t>(half);
}

float half_to_float(uint16_t bits) {
  uint32_t sign = (bits & 0x8000u) << 16;
  uint32_t exp = (bits >> 10) & 0x1fu;
  uint32_t mant = bits & 0x3ffu;
  uint32_t f;
  if (exp == 0) {
    if (mant == 0) {
      f = sign;
    } else { // subnormal: normalise
      int32_t e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      mant &= 0x3ffu;
      f = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    f = sign | 0x7f800000u | (mant << 13);
  } else {
    f = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float out;
  std::memcpy(&out, &f, sizeof out);
  return out;
}

} // namespace actorserve
