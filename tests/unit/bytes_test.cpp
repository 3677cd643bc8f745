// BYTES tensors: their layout (a 4-byte length before each element) and how each front's codec
// reads them (JSON strings, the binary data extension, gRPC bytes_contents and raw contents).
#include <catch2/catch.hpp>

#include "net/kserve/json_codec.hpp"
#include "runtime/error.hpp"
#include "runtime/tensor.hpp"

using namespace actorserve;

namespace {

std::string packed(std::initializer_list<std::string_view> elements) {
  std::vector<uint8_t> out;
  for (auto e : elements)
    append_bytes_element(out, e);
  return {out.begin(), out.end()};
}

std::string error_of(const std::string& body, std::optional<std::size_t> json_length) {
  auto r = kserve::decode_request(body, json_length);
  REQUIRE_FALSE(r);
  CHECK(error_code(r.error()) == errc::invalid_input);
  return error_message(r.error());
}

} // namespace

TEST_CASE("BYTES elements are a 4-byte little-endian length and that many bytes", "[bytes]") {
  auto data = packed({"ab", "", "xyz"});
  CHECK(data.size() == 4 + 2 + 4 + 0 + 4 + 3);
  CHECK(data.substr(0, 4) == std::string("\x02\0\0\0", 4));
  auto e = bytes_elements(data, 3);
  REQUIRE(e);
  CHECK(*e == std::vector<std::string_view>{"ab", "", "xyz"});
  CHECK_FALSE(bytes_elements(data, 2));                  // bytes left over
  CHECK_FALSE(bytes_elements(data, 4));                  // one missing
  CHECK_FALSE(bytes_elements(data.substr(0, 9), 3));     // a length past the end
  CHECK_FALSE(bytes_elements(std::string(3, '\0'), 1));  // a length cut short
  CHECK_FALSE(bytes_elements(data, 1'000'000'000));      // (refused before reserving anything)
  tensor t;
  t.dtype = datatype::BYTES;
  t.shape = {3};
  t.data = std::vector<uint8_t>(data.begin(), data.end());
  CHECK(t.consistent());
  t.shape = {1, 3};
  CHECK(t.consistent());
  t.shape = {2};
  CHECK_FALSE(t.consistent());
  CHECK(parse_datatype("BYTES") == datatype::BYTES);
  CHECK(to_string(datatype::BYTES) == "BYTES");
}

TEST_CASE("BYTES inputs decode from JSON strings, nested or flat, and encode back", "[bytes]") {
  auto r = kserve::decode_request(
    R"({"inputs":[{"name":"urls","datatype":"BYTES","shape":[2,1],
        "data":[["http://a/1.jpg"],["caf\u00e9"]]}],
        "parameters":{"images_are":"urls","timeout":5000}})",
    std::nullopt);
  REQUIRE(r);
  auto& t = r->request.inputs.at(0);
  CHECK(t.consistent());
  CHECK(t.view() == packed({"http://a/1.jpg", "caf\xc3\xa9"}));
  // String parameters reach the pipeline's stages; the front's own are read into fields.
  CHECK(r->request.parameters.at("images_are") == "urls");
  CHECK(r->request.timeout_us == 5000);
  std::string json;
  kserve::append_json_data(json, t);
  CHECK(json == R"(["http://a/1.jpg","café"])");
}

TEST_CASE("BYTES JSON data that is not strings or not the shape's count is refused", "[bytes]") {
  CHECK(error_of(R"({"inputs":[{"name":"u","datatype":"BYTES","shape":[2],"data":["a",3]}]})",
                 std::nullopt)
        == "input 'u': data[1] must be a string for datatype BYTES, got an integer (3)");
  CHECK(error_of(R"({"inputs":[{"name":"u","datatype":"BYTES","shape":[3],"data":["a","b"]}]})",
                 std::nullopt)
        == "input 'u': shape [3] needs 3 elements, data has 2");
}

TEST_CASE("BYTES in the binary data extension: any length, its prefixes checked", "[bytes]") {
  auto binary = packed({"\xff\xd8\xff jpeg", "second"});
  auto header = R"({"inputs":[{"name":"img","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":)"
                + std::to_string(binary.size()) + "}}]}";
  auto r = kserve::decode_request(header + binary, header.size());
  REQUIRE(r);
  CHECK(r->request.inputs.at(0).view() == binary);

  // Fewer bytes than the shape's lengths take, lengths that do not add up, or bytes left over.
  auto short_header = R"({"inputs":[{"name":"img","datatype":"BYTES","shape":[3],"parameters":{"binary_data_size":8}}]})";
  CHECK(error_of(short_header + std::string(8, '\0'), std::strlen(short_header))
        == "input 'img': binary_data_size 8 is less than shape [3] of BYTES takes (12 bytes: a "
           "4-byte length per element)");
  auto wrong = binary;
  wrong[0] = 100; // the first length now runs past the data
  CHECK(error_of(header + wrong, header.size())
        == "input 'img': its binary data bytes are not 2 BYTES elements (shape [2]), each a "
           "4-byte little-endian length followed by that many bytes");
}
