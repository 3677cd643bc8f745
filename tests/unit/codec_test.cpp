#include <catch2/catch.hpp>

#include <cstring>

#include <boost/json.hpp>

#include "net/kserve/json_codec.hpp"
#include "runtime/error.hpp"
#include "runtime/json_text.hpp"
#include "test_support.hpp"

using namespace actorserve;
using namespace actorserve::test;

namespace {

std::string decode_error(const std::string& body, std::optional<std::size_t> len = std::nullopt) {
  auto r = kserve::decode_request(body, len);
  REQUIRE_FALSE(r);
  CHECK(error_code(r.error()) == errc::invalid_input);
  return error_message(r.error());
}

tensor decode_single(const std::string& datatype, const std::string& shape,
                     const std::string& data) {
  auto body = R"({"inputs":[{"name":"t","datatype":")" + datatype + R"(","shape":)" + shape
              + R"(,"data":)" + data + "}]}";
  auto r = kserve::decode_request(body, std::nullopt);
  if (!r)
    FAIL(error_message(r.error()));
  return r->request.inputs.at(0);
}

/// Encodes `t` as a response output in JSON and returns its "data" array as text.
std::string encode_data(const tensor& t) {
  std::string s;
  kserve::append_json_data(s, t);
  return s;
}

} // namespace

TEST_CASE("JSON tensors decode and encode for every datatype", "[codec]") {
  struct row {
    const char* dtype;
    const char* data;
    std::vector<uint8_t> bytes;
    const char* back;
  };
  std::vector<row> rows{
    {"BOOL", "[true,false]", {1, 0}, "[true,false]"},
    {"UINT8", "[0,255]", {0, 255}, "[0,255]"},
    {"INT8", "[-128,127]", {0x80, 0x7f}, "[-128,127]"},
    {"INT16", "[-2,300]", {0xfe, 0xff, 0x2c, 0x01}, "[-2,300]"},
    {"INT32", "[-1,65536]", {0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0}, "[-1,65536]"},
    {"INT64", "[1,-9007199254740993]", {1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xdf, 0xff},
     "[1,-9007199254740993]"},
    {"FP16", "[1.0,-2.5]", {0x00, 0x3c, 0x00, 0xc1}, "[1,-2.5]"},
    {"FP32", "[0.1,2]", {0xcd, 0xcc, 0xcc, 0x3d, 0, 0, 0, 0x40}, "[0.1,2]"},
    {"FP64", "[0.1,-3]", {0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0x3f, 0, 0, 0, 0, 0, 0, 0x08, 0xc0},
     "[0.1,-3]"},
  };
  for (auto& r : rows) {
    INFO(r.dtype);
    auto t = decode_single(r.dtype, "[2]", r.data);
    CHECK(to_string(t.dtype) == r.dtype);
    CHECK(t.data == r.bytes);
    CHECK(encode_data(t) == r.back);
  }
}

TEST_CASE("JSON data may be nested row-major arrays", "[codec]") {
  auto t = decode_single("INT32", "[2,2]", "[[1,2],[3,4]]");
  CHECK(t.shape == std::vector<int64_t>{2, 2});
  CHECK(t.data.size() == 16);
  CHECK(encode_data(t) == "[1,2,3,4]");
}

TEST_CASE("flat FP32 data of every JSON number kind decodes as the nested form does", "[codec]") {
  auto flat = decode_single("FP32", "[4]", "[1, -2, 0.5, 18446744073709551615]");
  auto nested = decode_single("FP32", "[2,2]", "[[1, -2], [0.5, 18446744073709551615]]");
  REQUIRE(flat.data.size() == 16);
  CHECK(std::memcmp(flat.data.data(), nested.data.data(), 16) == 0);
  float x[4];
  std::memcpy(x, flat.data.data(), sizeof x);
  CHECK(x[0] == 1.0f);
  CHECK(x[1] == -2.0f);
  CHECK(x[2] == 0.5f);
  CHECK(x[3] == static_cast<float>(18446744073709551615.0));
}

TEST_CASE("JSON data errors name the input, the element and what was expected", "[codec]") {
  auto body = [](const char* dtype, const char* shape, const char* data) {
    return std::string(R"({"inputs":[{"name":"img","datatype":")") + dtype + R"(","shape":)"
           + shape + R"(,"data":)" + data + "}]}";
  };
  CHECK(decode_error(body("FP32", "[1,3]", "[1,2]"))
        == "input 'img': shape [1, 3] needs 3 elements, data has 2");
  CHECK(decode_error(body("INT8", "[2]", "[1,200]"))
        == "input 'img': data[1] must be an integer in range for datatype INT8, got an integer (200)");
  CHECK(decode_error(body("BOOL", "[1]", "[1]"))
        == "input 'img': data[0] must be true or false for datatype BOOL, got an integer (1)");
  CHECK(decode_error(body("FP32", "[1]", R"(["x"])"))
        == "input 'img': data[0] must be a number for datatype FP32, got a string");
  // Past the datatype's range: named, never converted (that would be undefined behaviour).
  CHECK(decode_error(body("FP32", "[2]", "[1, 1e39]"))
        == "input 'img': data[1] = 1E39 is outside the range of datatype FP32 (magnitude at most "
           "3.4028235e+38)");
  CHECK(decode_error(body("FP16", "[1]", "[-70000]"))
        == "input 'img': data[0] = -70000 is outside the range of datatype FP16 (magnitude at most "
           "65504)");
  CHECK(kserve::decode_request(body("FP32", "[2]", "[3.4e38, -65504]"), std::nullopt));
  CHECK(kserve::decode_request(body("FP64", "[1]", "[1e300]"), std::nullopt));
  CHECK(decode_error(body("UINT8", "[1]", "[1.5]"))
        == "input 'img': data[0] must be an integer in range for datatype UINT8, got a number (1.5E0)");
  CHECK(decode_error(body("STRING", "[1]", R"(["a"])"))
        == "input 'img': unsupported datatype 'STRING'; expected BOOL, UINT8, INT8, INT16, INT32, "
           "INT64, FP16, FP32, FP64 or BYTES");
  CHECK(decode_error(body("FP32", "[-1]", "[]"))
        == "input 'img': shape must hold non-negative integers, got [-1]");
  CHECK(decode_error(body("FP32", "[1]", "3"))
        == "input 'img': data must be an array, got an integer (3)");
}

TEST_CASE("malformed request bodies get precise errors", "[codec]") {
  CHECK(decode_error("{").rfind("request body is not valid JSON", 0) == 0);
  CHECK(decode_error("[]") == "request body must be a JSON object, got an array");
  CHECK(decode_error("{}") == "the request has no 'inputs'");
  CHECK(decode_error(R"({"inputs":[]})") == "'inputs' must be a non-empty array");
  CHECK(decode_error(R"({"inputs":[{"name":"a","datatype":"FP32","shape":[1],"data":[1]}],"x":1})")
        == "unknown key 'x' in the request; expected id, parameters, inputs, outputs");
  CHECK(decode_error(R"({"inputs":[{"name":"a","datatype":"FP32","shape":[1],"data":[1],"dat":1}]})")
        == "input 'a': unknown key 'dat'");
  CHECK(decode_error(R"({"inputs":[{"name":"a","datatype":"FP32","shape":[1]}]})")
        == "input 'a': has neither 'data' nor binary_data_size (nor shared memory)");
  CHECK(decode_error(R"({"parameters":{"timeout":"soon"},"inputs":[{"name":"a","datatype":"FP32","shape":[1],"data":[1]}]})")
        == "parameter 'timeout' must be a positive integer (microseconds), got a string");
}

TEST_CASE("request id, timeout and output options are decoded", "[codec]") {
  auto r = kserve::decode_request(
    R"({"id":"abc","parameters":{"timeout":2500,"binary_data_output":true},
        "inputs":[{"name":"a","datatype":"FP32","shape":[1],"data":[1]}],
        "outputs":[{"name":"o1","parameters":{"binary_data":false}},{"name":"o2"}]})",
    std::nullopt);
  REQUIRE(r);
  CHECK(r->request.client_id == "abc");
  CHECK(r->request.timeout_us == 2500);
  CHECK(r->request.outputs == std::vector<std::string>{"o1", "o2"});
  CHECK_FALSE(r->want_binary("o1"));
  CHECK(r->want_binary("o2"));
}

TEST_CASE("binary tensor data follows the JSON header", "[codec]") {
  std::string json = R"({"inputs":[{"name":"a","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}},
                                   {"name":"b","datatype":"UINT8","shape":[3],"parameters":{"binary_data_size":3}}]})";
  float values[2] = {1.5f, -2.0f};
  std::string body = json;
  body.append(reinterpret_cast<const char*>(values), 8);
  body += std::string("\x01\x02\x03", 3);
  auto r = kserve::decode_request(body, json.size());
  REQUIRE(r);
  REQUIRE(r->request.inputs.size() == 2);
  CHECK(floats(r->request.inputs[0]) == std::vector<float>{1.5f, -2.0f});
  CHECK(r->request.inputs[1].data == std::vector<uint8_t>{1, 2, 3});

  // Given the body's owner, the tensors are views of the body (no copy) that keep it alive.
  auto owned = std::make_shared<const std::string>(body);
  std::weak_ptr<const std::string> watch = owned;
  auto v = kserve::decode_request(*owned, json.size(), owned);
  owned.reset();
  REQUIRE(v);
  REQUIRE_FALSE(watch.expired());
  auto& b = v->request.inputs[1].data;
  CHECK(b.data() == reinterpret_cast<const uint8_t*>(watch.lock()->data()) + json.size() + 8);
  CHECK(b == std::vector<uint8_t>{1, 2, 3});
  CHECK(floats(v->request.inputs[0]) == std::vector<float>{1.5f, -2.0f});
  v->request.inputs.clear();
  CHECK(watch.expired());
}

TEST_CASE("binary tensor data of the wrong size is rejected", "[codec]") {
  std::string json = R"({"inputs":[{"name":"a","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":6}}]})";
  CHECK(decode_error(json + std::string(6, 'x'), json.size())
        == "input 'a': binary_data_size 6 does not match shape [2] of FP32 (8 bytes)");
  std::string ok = R"({"inputs":[{"name":"a","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}}]})";
  CHECK(decode_error(ok + std::string(4, 'x'), ok.size())
        == "input 'a': binary data ends after 4 of its 8 bytes");
  CHECK(decode_error(ok + std::string(12, 'x'), ok.size())
        == "the body carries 4 bytes of binary data that no input's binary_data_size claims");
  CHECK(decode_error(ok, std::nullopt)
        == "input 'a': binary_data_size given but the request has no Inference-Header-Content-Length header");
  CHECK(decode_error(ok, ok.size() + 10)
        == "Inference-Header-Content-Length is " + std::to_string(ok.size() + 10)
             + " but the body has only " + std::to_string(ok.size()) + " bytes");
}

TEST_CASE("responses encode outputs as JSON or binary as the request asked", "[codec]") {
  infer_response res;
  res.model = "m";
  res.version = "1";
  res.client_id = "req-\"7\"";
  res.batch_rows = 3;
  res.batch_requests = 2;
  res.outputs = {fp32("y", {1, 2}, {0.5f, 1.0f}), fp32("z", {1, 1}, {4.0f})};
  kserve::decoded_request opts;
  auto json_only = kserve::encode_response(res, opts);
  CHECK_FALSE(json_only.json_length);
  auto doc = boost::json::parse(json_only.body).as_object();
  CHECK(doc["model_name"] == "m");
  CHECK(doc["id"] == "req-\"7\"");
  CHECK(doc["parameters"].as_object()["batch_size"] == 3);
  auto& y = doc["outputs"].as_array()[0].as_object();
  CHECK(y["datatype"] == "FP32");
  CHECK(boost::json::serialize(y["shape"]) == "[1,2]");
  CHECK(boost::json::serialize(y["data"]) == "[5E-1,1]"); // floats print shortest: 1.0f as 1

  opts.binary_outputs = {"z"};
  auto mixed = kserve::encode_response(res, opts);
  REQUIRE(mixed.json_length);
  auto header = boost::json::parse(mixed.body.substr(0, *mixed.json_length)).as_object();
  auto& z = header["outputs"].as_array()[1].as_object();
  CHECK(z["parameters"].as_object()["binary_data_size"] == 4);
  CHECK_FALSE(z.contains("data"));
  REQUIRE(mixed.body.size() == *mixed.json_length + 4);
  float back;
  std::memcpy(&back, mixed.body.data() + *mixed.json_length, 4);
  CHECK(back == 4.0f);
}

TEST_CASE("model metadata lists tensors with the batch dimension as -1", "[codec]") {
  auto m = small_model(8);
  auto doc = boost::json::parse(kserve::encode_model_metadata(m)).as_object();
  CHECK(doc["name"] == "m");
  CHECK(boost::json::serialize(doc["versions"]) == R"(["1"])");
  CHECK(boost::json::serialize(doc["inputs"]) == R"([{"name":"x","datatype":"FP32","shape":[-1,2]}])");
}

TEST_CASE("JSON text written with client bytes is valid UTF-8", "[codec]") {
  const std::string fffd = "\xEF\xBF\xBD";
  // Valid text of every sequence length passes unchanged.
  std::string ok = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z"; // a é € 😀 z
  CHECK(valid_utf8(ok) == ok);
  CHECK(valid_utf8("") == "");
  // Each byte that starts no valid sequence becomes U+FFFD; what follows it is kept.
  CHECK(valid_utf8("/v2/mod\x81ls") == "/v2/mod" + fffd + "ls");     // stray continuation
  CHECK(valid_utf8("img\xD6\xCFnfer") == "img" + fffd + fffd + "nfer"); // lead without continuation
  CHECK(valid_utf8("x\xE2\x82") == "x" + fffd + fffd);               // truncated at the end
  CHECK(valid_utf8("\xC0\xAF") == fffd + fffd);                       // overlong '/'
  CHECK(valid_utf8("\xE0\x80\xAF") == fffd + fffd + fffd);            // overlong, 3 bytes
  CHECK(valid_utf8("\xED\xA0\x80") == fffd + fffd + fffd);            // a surrogate
  CHECK(valid_utf8("\xF4\x90\x80\x80") == fffd + fffd + fffd + fffd); // past U+10FFFF
  CHECK(valid_utf8("\xFF") == fffd);
  CHECK(valid_utf8("\xF4\x8F\xBF\xBF") == "\xF4\x8F\xBF\xBF"); // U+10FFFF itself
  // Quoted, it parses back as JSON (a strict parser rejects invalid UTF-8).
  auto q = kserve::quote("no route for POST /v2/mod\x81ls/mlp/\"infer\"\n\xFF");
  boost::json::error_code ec;
  auto v = boost::json::parse(q, ec);
  REQUIRE_FALSE(ec);
  CHECK(v.as_string() == "no route for POST /v2/mod" + fffd + "ls/mlp/\"infer\"\n" + fffd);
}

TEST_CASE("a JSON document counts in the memory budget while it is parsed", "[codec]") {
  // 20,000 numbers: 40 KB of text, a document many times that.
  std::string data = "0";
  for (int i = 1; i < 20'000; ++i)
    data += ",0";
  auto body = R"({"inputs":[{"name":"t","datatype":"FP32","shape":[20000],"data":[)" + data + "]}]}";
  std::atomic<uint64_t> used{0};
  kserve::memory_budget plenty{&used, 64u << 20, 0};
  REQUIRE(kserve::decode_request(body, std::nullopt, {}, &plenty));
  CHECK(used == 0); // given back
  // Alone past the limit: too large, whatever the others hold.
  kserve::memory_budget tight{&used, 100'000, body.size()};
  used = body.size(); // (its own body, counted by the server)
  auto r = kserve::decode_request(body, std::nullopt, {}, &tight);
  REQUIRE_FALSE(r);
  CHECK(error_code(r.error()) == errc::payload_too_large);
  CHECK(used == body.size());
  // Past it only because others hold the rest: overloaded, try again.
  kserve::memory_budget shared{&used, 64u << 20, body.size()};
  used = (64u << 20) - 1000;
  r = kserve::decode_request(body, std::nullopt, {}, &shared);
  REQUIRE_FALSE(r);
  CHECK(error_code(r.error()) == errc::overloaded);
  CHECK(used == (64u << 20) - 1000);
  // A small document is parsed without touching the budget.
  used = 0;
  kserve::memory_budget none{&used, 1, 0};
  REQUIRE(kserve::decode_request(R"({"inputs":[{"name":"t","datatype":"FP32","shape":[2],"data":[1,2]}]})",
                                 std::nullopt, {}, &none));
  CHECK(used == 0);
}

TEST_CASE("model configuration reads as Triton's model configuration extension", "[codec]") {
  model_config m;
  m.name = "resnet";
  m.max_batch_size = 16;
  m.inputs = {tensor_spec{"image", datatype::UINT8, {224, 224, 3}}};
  m.outputs = {tensor_spec{"logits", datatype::FP32, {1000}}};
  m.devices = {"cuda:0", "cuda:1"};
  m.instances = 2;
  m.batching.preferred_batch_sizes = {8, 16};
  m.batching.max_queue_delay_us = 2000;
  m.parameters = {{"intra_op_threads", "1"}};
  auto c = boost::json::parse(kserve::encode_model_config(m)).as_object();
  CHECK(c["name"] == "resnet");
  CHECK(c["platform"] == "pytorch_torchscript");
  CHECK(c["backend"] == "pytorch");
  CHECK(c["max_batch_size"] == 16);
  CHECK(boost::json::serialize(c["input"])
        == R"([{"name":"image","data_type":"TYPE_UINT8","dims":[224,224,3]}])");
  CHECK(boost::json::serialize(c["output"])
        == R"([{"name":"logits","data_type":"TYPE_FP32","dims":[1000]}])");
  CHECK(boost::json::serialize(c["instance_group"])
        == R"([{"name":"resnet_gpu","kind":"KIND_GPU","count":2,"gpus":[0,1]}])");
  auto& db = c["dynamic_batching"].as_object();
  CHECK(boost::json::serialize(db["preferred_batch_size"]) == "[8,16]");
  CHECK(db["max_queue_delay_microseconds"] == 2000);
  CHECK(boost::json::serialize(c["parameters"]) == R"({"intra_op_threads":{"string_value":"1"}})");
  m.max_batch_size = 0; // no batching: no dynamic_batching; CPU instances
  m.devices = {"cpu"};
  c = boost::json::parse(kserve::encode_model_config(m)).as_object();
  CHECK_FALSE(c.contains("dynamic_batching"));
  CHECK(boost::json::serialize(c["instance_group"])
        == R"([{"name":"resnet_cpu","kind":"KIND_CPU","count":2}])");
}

TEST_CASE("classification answers an output as its top classes per row, as Triton's extension",
          "[codec][classification]") {
  auto req = kserve::decode_request(
    R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],"outputs":[)"
    R"({"name":"y","parameters":{"classification":2}}]})",
    std::nullopt);
  REQUIRE(req);
  REQUIRE(req->classifications.size() == 1);
  CHECK(req->classifications[0].count == 2);
  infer_response res;
  res.outputs = {fp32("y", {2, 4}, {1.1f, 3.3f, 0.5f, 2.4f, 7, 7, -1, 8})};
  auto body = kserve::encode_response(res, *req).body;
  CHECK(body.find(R"({"name":"y","datatype":"BYTES","shape":[2,2],)"
                  R"("data":["3.3:1","2.4:3","8:3","7:0"]})")
        != std::string::npos); // (ties: the lower index first)
  // Labels name the classes; more classes than there are gives them all.
  const std::vector<std::string> labels{"zero", "one", "two"};
  req->classifications[0].labels = &labels;
  req->classifications[0].count = 9;
  body = kserve::encode_response(res, *req).body;
  CHECK(body.find(R"("shape":[2,4],"data":["3.3:1:one","2.4:3","1.1:0:zero","0.5:2:two",)"
                  R"("8:3","7:0:zero","7:1:one","-1:2:two"]})")
        != std::string::npos);
  // A model that does not batch: the whole output is one row.
  req->classifications[0].labels = nullptr;
  req->classifications[0].count = 1;
  req->classifications[0].batched = false;
  body = kserve::encode_response(res, *req).body;
  CHECK(body.find(R"("shape":[1],"data":["8:7"]})") != std::string::npos);
  // Binary: each string as its length (uint32, little-endian) and its bytes.
  req->classifications[0].batched = true;
  req->binary_output_default = true;
  auto enc = kserve::encode_response(res, *req);
  REQUIRE(enc.json_length);
  CHECK(enc.body.find(R"({"name":"y","datatype":"BYTES","shape":[2,1],)"
                      R"("parameters":{"binary_data_size":16}})")
        != std::string::npos);
  CHECK(enc.body.substr(*enc.json_length) == std::string("\x05\0\0\0" "3.3:1" "\x03\0\0\0" "8:3", 16));
}

TEST_CASE("the priority parameter is a non-negative integer", "[codec][priority]") {
  auto with = [](const std::string& p) {
    return R"({"parameters":{"priority":)" + p
           + R"(},"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})";
  };
  auto r = kserve::decode_request(with("2"), std::nullopt);
  REQUIRE(r);
  CHECK(r->request.priority == 2);
  CHECK(decode_error(with("-1"))
        == "parameter 'priority' must be a non-negative integer (1 = highest, 0 = the model's "
           "default), got an integer (-1)");
}

TEST_CASE("a classification parameter that is wrong is refused by name", "[codec][classification]") {
  auto with = [](const std::string& param) {
    return R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],"outputs":[)"
           R"({"name":"y","parameters":{"classification":)" + param + "}}]}";
  };
  CHECK(decode_error(with("0"))
        == "output 'y': classification must be a positive integer (the classes to return per "
           "row), got an integer (0)");
  CHECK(decode_error(with("\"3\""))
        == "output 'y': classification must be a positive integer (the classes to return per "
           "row), got a string");
}
