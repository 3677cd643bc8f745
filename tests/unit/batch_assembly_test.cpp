#include <catch2/catch.hpp>

#include "runtime/batch_assembly.hpp"
#include "runtime/error.hpp"
#include "test_support.hpp"

using namespace actorserve;
using namespace actorserve::test;

namespace {

std::string validation_error(const model_config& m, infer_request r) {
  auto err = validate_request(m, r);
  return err ? error_message(err) : "";
}

} // namespace

TEST_CASE("validation accepts a well-formed request and orders inputs as declared", "[validation]") {
  auto m = small_model();
  m.inputs.push_back(tensor_spec{"z", datatype::INT32, {-1}});
  auto r = request_with_rows(2);
  tensor z;
  z.name = "z";
  z.dtype = datatype::INT32;
  z.shape = {2, 3};
  z.data.resize(24);
  r.inputs.insert(r.inputs.begin(), z);
  CHECK_FALSE(validate_request(m, r));
  CHECK(r.inputs[0].name == "x");
  CHECK(r.inputs[1].name == "z");
  CHECK(request_rows(m, r) == 2);
}

TEST_CASE("validation names the input and what was expected", "[validation]") {
  auto m = small_model(4);
  auto r = request_with_rows(1);
  r.inputs[0].name = "q";
  CHECK(validation_error(m, r) == "unexpected input 'q' for model 'm'; the model's inputs are 'x'");
  r = request_with_rows(1);
  r.inputs.clear();
  CHECK(validation_error(m, r) == "missing input 'x' for model 'm'");
  r = request_with_rows(1);
  r.inputs[0].dtype = datatype::INT32;
  CHECK(validation_error(m, r) == "input 'x': expected datatype FP32, got INT32");
  r = request_with_rows(1);
  r.inputs[0].shape = {1, 3};
  CHECK(validation_error(m, r)
        == "input 'x': expected shape [-1, 2] (-1 = batch dimension, 1 to 4), got [1, 3]");
  r = request_with_rows(1);
  r.inputs[0].shape = {2};
  CHECK(validation_error(m, r)
        == "input 'x': expected shape [-1, 2] (-1 = batch dimension, 1 to 4), got [2]");
  r = request_with_rows(5);
  CHECK(validation_error(m, r)
        == "input 'x': batch dimension must be between 1 and 4 (max_batch_size of model 'm'), got 5");
  r = request_with_rows(1);
  r.inputs[0].data.resize(r.inputs[0].data.size() - 1);
  CHECK(validation_error(m, r) == "input 'x': shape [1, 2] of FP32 needs 8 bytes, got 7");
  r = request_with_rows(1);
  r.inputs.push_back(r.inputs[0]);
  CHECK(validation_error(m, r) == "input 'x' appears more than once");
  r = request_with_rows(1);
  r.outputs = {"nope"};
  CHECK(validation_error(m, r) == "unknown output 'nope' requested from model 'm'");
}

TEST_CASE("an image for preprocessing must have at least one pixel", "[validation]") {
  // A 0x0 image of a variable-size input reached the resize and crashed the node.
  auto m = small_model(4);
  m.inputs = {tensor_spec{"img", datatype::UINT8, {-1, -1, 3}}};
  m.preprocess.enabled = true;
  m.preprocess.input = "img";
  m.preprocess.resize_height = m.preprocess.resize_width = 8;
  auto image = [](int64_t h, int64_t w) {
    infer_request r;
    tensor t;
    t.name = "img";
    t.dtype = datatype::UINT8;
    t.shape = {1, h, w, 3};
    t.data.resize(static_cast<std::size_t>(h * w * 3));
    r.inputs.push_back(t);
    return r;
  };
  CHECK(validation_error(m, image(1, 1)).empty());
  CHECK(validation_error(m, image(0, 0))
        == "input 'img': an image must be at least 1x1 pixels, got 0x0 (shape [1, 0, 0, 3])");
  CHECK(validation_error(m, image(5, 0))
        == "input 'img': an image must be at least 1x1 pixels, got 5x0 (shape [1, 5, 0, 3])");
  m.preprocess.enabled = false; // a model without preprocessing may take empty tensors
  CHECK(validation_error(m, image(0, 0)).empty());
}

TEST_CASE("validation of a model without batching takes shapes as declared", "[validation]") {
  auto m = small_model(0);
  auto r = request_with_rows(1);
  r.inputs[0].shape = {2};
  CHECK_FALSE(validate_request(m, r));
  CHECK(request_rows(m, r) == 1);
  r.inputs[0].shape = {1, 2};
  CHECK(validation_error(m, r) == "input 'x': expected shape [2], got [1, 2]");
}

TEST_CASE("requests of different non-batch shapes get different shape keys", "[validation]") {
  auto m = small_model();
  m.inputs[0].dims = {-1};
  auto a = request_with_rows(1);
  auto b = request_with_rows(3);
  CHECK(shape_key(m, a) == shape_key(m, b));
  b.inputs[0].shape = {1, 6};
  CHECK(shape_key(m, a) != shape_key(m, b));
}

TEST_CASE("a batch concatenates inputs along the batch dimension and splits outputs back",
          "[assembly]") {
  auto m = small_model();
  std::vector<infer_request> reqs{request_with_rows(1, 0), request_with_rows(2, 10)};
  auto batch = assemble_batch(m, reqs);
  REQUIRE(batch.size() == 1);
  CHECK(batch[0].shape == std::vector<int64_t>{3, 2});
  CHECK(floats(batch[0]) == std::vector<float>{0, 1, 10, 11, 12, 13});
  std::vector<tensor> outputs{fp32("ignored", {3, 2}, {1, 2, 3, 4, 5, 6})};
  auto per = split_batch(m, reqs, std::move(outputs));
  REQUIRE(per.size() == 2);
  CHECK(per[0][0].name == "y");
  CHECK(per[0][0].shape == std::vector<int64_t>{1, 2});
  CHECK(floats(per[0][0]) == std::vector<float>{1, 2});
  CHECK(per[1][0].shape == std::vector<int64_t>{2, 2});
  CHECK(floats(per[1][0]) == std::vector<float>{3, 4, 5, 6});
}

TEST_CASE("split keeps only the outputs each request asked for", "[assembly]") {
  auto m = small_model();
  m.outputs.push_back(tensor_spec{"z", datatype::FP32, {1}});
  std::vector<infer_request> reqs{request_with_rows(1), request_with_rows(1)};
  reqs[0].outputs = {"z"};
  auto per = split_batch(m, reqs, {fp32("", {2, 2}, {1, 2, 3, 4}), fp32("", {2, 1}, {7, 8})});
  REQUIRE(per[0].size() == 1);
  CHECK(per[0][0].name == "z");
  CHECK(floats(per[0][0]) == std::vector<float>{7});
  REQUIRE(per[1].size() == 2);
  CHECK(floats(per[1][1]) == std::vector<float>{8});
}

TEST_CASE("split rejects outputs that do not match the declaration", "[assembly]") {
  auto m = small_model();
  std::vector<infer_request> reqs{request_with_rows(2)};
  CHECK_THROWS_WITH(split_batch(m, reqs, {}),
                    "model 'm' returned 0 outputs, its configuration declares 1");
  tensor wrong = fp32("", {2, 2}, {1, 2, 3, 4});
  wrong.dtype = datatype::INT32;
  CHECK_THROWS_WITH(split_batch(m, reqs, {wrong}),
                    "output 'y' of model 'm' has datatype INT32, its configuration declares FP32");
  CHECK_THROWS_WITH(split_batch(m, reqs, {fp32("", {4, 1}, {1, 2, 3, 4})}),
                    "output 'y' of model 'm' has shape [4, 1], expected the batch dimension 2 first");
}

TEST_CASE("warm-up inputs are zeros of the declared shape, variable dims set to 1", "[assembly]") {
  auto m = small_model();
  m.inputs[0].dims = {-1, 3};
  auto in = warmup_inputs(m, 4);
  REQUIRE(in.size() == 1);
  CHECK(in[0].shape == std::vector<int64_t>{4, 1, 3});
  CHECK(in[0].data == std::vector<uint8_t>(48, 0));
}

TEST_CASE("gathering a large batch with several threads writes what one thread writes",
          "[assembly]") {
  std::vector<tensor> parts(37);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    parts[i].dtype = datatype::UINT8;
    parts[i].shape = {1, static_cast<int64_t>(100'000 + i)};
    parts[i].data.resize(100'000 + i);
    auto* p = parts[i].data.mutable_data();
    for (std::size_t k = 0; k < parts[i].data.size(); ++k)
      p[k] = static_cast<uint8_t>((i * 131 + k) % 251);
  }
  batch_input in;
  in.dtype = datatype::UINT8;
  for (auto& p : parts)
    in.parts.push_back(&p);
  std::vector<uint8_t> one(in.bytes()), four(in.bytes(), 0xff);
  in.copy_to(one.data());
  in.copy_to(four.data(), 4);
  CHECK(one == four);
  CHECK(in.bytes() > 3'000'000); // enough for the threads to be used
}

TEST_CASE("views of assembled inputs hand over the same tensors", "[assembly]") {
  std::vector<tensor> in{fp32("a", {2, 2}, {1, 2, 3, 4}), fp32("b", {2, 1}, {5, 6})};
  auto views = views_of(in);
  REQUIRE(views.size() == 2);
  CHECK(views[1].name == "b");
  CHECK(views[1].shape == std::vector<int64_t>{2, 1});
  REQUIRE(views[0].parts.size() == 1);
  CHECK(views[0].parts[0] == &in[0]);
  CHECK(views[0].concatenate().data == in[0].data);
}

TEST_CASE("outputs a worker sends back are checked against the batch and the declaration",
          "[validation]") {
  auto m = small_model();
  auto check = [&](std::size_t requests, const batch_outputs& out) {
    auto err = check_batch_outputs(m, requests, out);
    CHECK((!err || error_code(err) == errc::worker_failed));
    return err ? error_message(err) : std::string();
  };
  batch_outputs out;
  out.per_request = {{fp32("y", {1, 2}, {1, 2})}, {fp32("y", {2, 2}, {1, 2, 3, 4})}};
  CHECK(check(2, out).empty());
  const std::string prefix = "the outputs sent back for a batch of model 'm' do not fit it: ";
  CHECK(check(3, out) == prefix + "2 answers for 3 requests");
  auto wrong = out;
  wrong.per_request[1][0].name = "z";
  CHECK(check(2, wrong) == prefix + "output 'z' is not declared");
  wrong = out;
  wrong.per_request[1][0].dtype = datatype::INT32;
  CHECK(check(2, wrong) == prefix + "output 'y' has datatype INT32, declared FP32");
  wrong = out;
  wrong.per_request[0][0].shape = {1, int64_t{1} << 62}; // a byte count that would wrap to 0
  wrong.per_request[0][0].data = {};
  CHECK(check(2, wrong) == prefix + "output 'y' has 0 bytes for shape [1, 4611686018427387904] of FP32");
}
