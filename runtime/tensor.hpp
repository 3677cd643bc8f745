// Tensors as they travel between actors and over the network: a name, a KServe v2 datatype, a
// shape and one contiguous row-major byte buffer. Framework tensors exist only inside backends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/meta/type_name.hpp>

#include "runtime/byte_buffer.hpp"

namespace actorserve {

/// The KServe v2 / Open Inference Protocol datatypes that actorserve carries. BYTES elements
/// have any length: a BYTES tensor's bytes are its elements in row-major order, each a 4-byte
/// little-endian length and then that many bytes (the protocol's binary data form, as Triton
/// lays it out).
enum class datatype : uint8_t { BOOL, UINT8, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES };

/// The datatypes' spellings for error messages: "BOOL, UINT8, ..., FP64 or BYTES".
extern const char* const datatype_list;

/// Parses the protocol's spelling ("FP32"); nullopt for anything else.
std::optional<datatype> parse_datatype(std::string_view name);

/// The protocol's spelling of `x`.
std::string_view to_string(datatype x);

/// Bytes per element of `x`; for BYTES the least an element takes (its 4-byte length).
std::size_t element_size(datatype x);

/// Number of elements of `shape`, or nullopt if a dimension is negative or the count overflows.
std::optional<int64_t> element_count(const std::vector<int64_t>& shape);

/// The most elements one tensor may have (2^40): a request's shape alone may claim any number,
/// and with this bound a byte count never overflows.
constexpr int64_t max_tensor_elements = int64_t{1} << 40;

/// The bytes a tensor of `shape` and `dt` takes (for BYTES the least it takes, element_size each);
/// nullopt for a negative dimension or more than max_tensor_elements elements.
std::optional<uint64_t> tensor_bytes(const std::vector<int64_t>& shape, datatype dt);

/// Formats a shape as "[1, 3, 224, 224]" for error messages (`separator` ","  for JSON).
std::string shape_to_string(const std::vector<int64_t>& shape, std::string_view separator = ", ");

/// The elements of BYTES data (views into `data`), or nullopt when `data` is not exactly `count`
/// whole elements.
std::optional<std::vector<std::string_view>> bytes_elements(std::string_view data, int64_t count);

/// Appends one BYTES element (its length, then its bytes) to `out`.
void append_bytes_element(std::vector<uint8_t>& out, std::string_view element);

struct tensor {
  std::string name;
  datatype dtype = datatype::FP32;
  std::vector<int64_t> shape;
  byte_buffer data; // row-major, little-endian, size == element_count * element_size

  /// True when `data` holds exactly the bytes `shape` and `dtype` call for (for BYTES: exactly
  /// as many whole elements as `shape` has).
  bool consistent() const;

  /// `data` as characters.
  std::string_view view() const {
    return {reinterpret_cast<const char*>(data.data()), data.size()};
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tensor& x) {
  return f(caf::meta::type_name("tensor"), x.name, x.dtype, x.shape, x.data);
}

/// IEEE half precision conversion (round to nearest even), used by the codecs and backends.
uint16_t float_to_half(float value);
float half_to_float(uint16_t bits);

} // namespace actorserve
