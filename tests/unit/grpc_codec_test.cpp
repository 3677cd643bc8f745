// The gRPC codec without a server: raw and typed inputs decoded (and every problem named),
// parameters, outputs encoded as raw contents, model metadata, Triton's model configuration and
// statistics messages.
#include <catch2/catch.hpp>

#include <cstring>

#include "net/grpc/codec.hpp"
#include "runtime/error.hpp"
#include "runtime/metrics.hpp"

using namespace actorserve;

namespace {

::inference::ModelInferRequest request_with_input(const std::string& datatype,
                                                  std::vector<int64_t> shape) {
  ::inference::ModelInferRequest msg;
  msg.set_model_name("m");
  auto* in = msg.add_inputs();
  in->set_name("x");
  in->set_datatype(datatype);
  for (auto d : shape)
    in->add_shape(d);
  return msg;
}

std::string error_of(const ::inference::ModelInferRequest& msg) {
  auto r = grpc_codec::decode_infer(msg);
  REQUIRE_FALSE(r);
  CHECK(error_code(r.error()) == errc::invalid_input);
  return error_message(r.error());
}

} // namespace

TEST_CASE("gRPC inputs in raw_input_contents become tensors with their bytes", "[grpc]") {
  auto msg = request_with_input("FP32", {2, 2});
  float xs[4] = {1, 2, 3, 4};
  msg.add_raw_input_contents(reinterpret_cast<const char*>(xs), sizeof(xs));
  msg.set_id("abc");
  (*msg.mutable_parameters())["timeout"].set_int64_param(5000);
  (*msg.mutable_parameters())["priority"].set_uint64_param(2);
  (*msg.mutable_parameters())["sequence_id"].set_int64_param(7); // meaningless here: ignored
  msg.add_outputs()->set_name("y");
  auto r = grpc_codec::decode_infer(msg);
  REQUIRE(r);
  CHECK(r->client_id == "abc");
  CHECK(r->timeout_us == 5000);
  CHECK(r->priority == 2);
  CHECK(r->outputs == std::vector<std::string>{"y"});
  REQUIRE(r->inputs.size() == 1);
  auto& t = r->inputs[0];
  CHECK(t.name == "x");
  CHECK(t.dtype == datatype::FP32);
  CHECK(t.shape == std::vector<int64_t>{2, 2});
  REQUIRE(t.data.size() == 16);
  CHECK(std::memcmp(t.data.data(), xs, 16) == 0);
}

TEST_CASE("gRPC typed contents become tensors, each datatype from its own field", "[grpc]") {
  auto msg = request_with_input("FP32", {3});
  for (float v : {1.5f, -2.0f, 3.25f})
    msg.mutable_inputs(0)->mutable_contents()->add_fp32_contents(v);
  auto* b = msg.add_inputs();
  b->set_name("flags");
  b->set_datatype("BOOL");
  b->add_shape(2);
  b->mutable_contents()->add_bool_contents(true);
  b->mutable_contents()->add_bool_contents(false);
  auto* i8 = msg.add_inputs();
  i8->set_name("small");
  i8->set_datatype("INT8");
  i8->add_shape(2);
  i8->mutable_contents()->add_int_contents(-128);
  i8->mutable_contents()->add_int_contents(127);
  auto* u8 = msg.add_inputs();
  u8->set_name("pixels");
  u8->set_datatype("UINT8");
  u8->add_shape(1);
  u8->mutable_contents()->add_uint_contents(255);
  auto* i64 = msg.add_inputs();
  i64->set_name("ids");
  i64->set_datatype("INT64");
  i64->add_shape(1);
  i64->mutable_contents()->add_int64_contents(-5);
  auto r = grpc_codec::decode_infer(msg);
  REQUIRE(r);
  REQUIRE(r->inputs.size() == 5);
  float f[3];
  std::memcpy(f, r->inputs[0].data.data(), 12);
  CHECK((f[0] == 1.5f && f[1] == -2.0f && f[2] == 3.25f));
  CHECK(r->inputs[1].data.data()[0] == 1);
  CHECK(r->inputs[1].data.data()[1] == 0);
  CHECK(static_cast<int8_t>(r->inputs[2].data.data()[0]) == -128);
  CHECK(static_cast<int8_t>(r->inputs[2].data.data()[1]) == 127);
  CHECK(r->inputs[3].data.data()[0] == 255);
  int64_t id;
  std::memcpy(&id, r->inputs[4].data.data(), 8);
  CHECK(id == -5);
}

TEST_CASE("gRPC requests that do not add up are refused naming the input and what it takes",
          "[grpc]") {
  auto msg = request_with_input("FP32", {2});
  msg.add_raw_input_contents(std::string(4, '\0'));
  CHECK_THAT(error_of(msg), Catch::Contains("input 'x': raw_input_contents[0] has 4 bytes, its "
                                            "shape [2] and datatype FP32 take 8"));
  msg = request_with_input("FP32", {2});
  msg.add_raw_input_contents(std::string(8, '\0'));
  msg.add_raw_input_contents(std::string(8, '\0'));
  CHECK_THAT(error_of(msg), Catch::Contains("raw_input_contents has 2 entries for 1 inputs"));
  msg = request_with_input("FP32", {2});
  msg.mutable_inputs(0)->mutable_contents()->add_int_contents(1);
  msg.mutable_inputs(0)->mutable_contents()->add_int_contents(2);
  CHECK_THAT(error_of(msg), Catch::Contains("input 'x' (FP32): expected 2 values in "
                                            "contents.fp32_contents"));
  // A shape that claims far more elements than were sent is refused before any allocation
  // (2^40 elements: the most any tensor may have).
  msg = request_with_input("FP32", {int64_t{1} << 30, 1024});
  msg.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1);
  CHECK_THAT(error_of(msg), Catch::Contains("has 1099511627776 elements, its contents 1 values"));
  // More than 2^40 elements is refused by the shape alone, raw or typed: [1, 2^62] FP32 once
  // wrapped its byte count to 0 and passed with no bytes at all.
  msg = request_with_input("FP32", {int64_t{1} << 31, 1024});
  msg.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1);
  CHECK_THAT(error_of(msg), Catch::Contains("invalid shape [2147483648, 1024] (non-negative "
                                            "dimensions, at most 2^40 elements in all)"));
  msg = request_with_input("FP32", {1, int64_t{1} << 62});
  msg.add_raw_input_contents("");
  CHECK_THAT(error_of(msg), Catch::Contains("invalid shape [1, 4611686018427387904]"));
  msg = request_with_input("INT8", {1});
  msg.mutable_inputs(0)->mutable_contents()->add_int_contents(300);
  CHECK_THAT(error_of(msg), Catch::Contains("value 300 at 0 is out of its datatype's range"));
  msg = request_with_input("FP16", {1});
  CHECK_THAT(error_of(msg), Catch::Contains("FP16 has no typed contents"));
  msg = request_with_input("STRING", {1});
  CHECK_THAT(error_of(msg), Catch::Contains("unsupported datatype 'STRING'"));
  msg = request_with_input("FP32", {-1});
  CHECK_THAT(error_of(msg), Catch::Contains("invalid shape [-1]"));
  msg = request_with_input("FP32", {1});
  msg.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1);
  *msg.add_inputs() = msg.inputs(0);
  CHECK_THAT(error_of(msg), Catch::Contains("input 'x' is given twice"));
  msg = request_with_input("FP32", {1});
  msg.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1);
  (*msg.mutable_parameters())["timeout"].set_string_param("soon");
  CHECK_THAT(error_of(msg), Catch::Contains("parameter 'timeout' must be a positive integer"));
  msg = request_with_input("FP32", {1});
  msg.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1);
  auto* out = msg.add_outputs();
  out->set_name("y");
  (*out->mutable_parameters())["classification"].set_int64_param(3);
  CHECK_THAT(error_of(msg), Catch::Contains("output 'y': classification is served over HTTP only"));
  ::inference::ModelInferRequest empty;
  CHECK_THAT(error_of(empty), Catch::Contains("the request has no inputs"));
}

TEST_CASE("gRPC inputs given twice are found among tens of thousands", "[grpc]") {
  // (The check was quadratic: 40,000 inputs took 6 s; now one pass.)
  ::inference::ModelInferRequest msg;
  msg.set_model_name("m");
  for (int i = 0; i < 40'000; ++i) {
    auto* in = msg.add_inputs();
    in->set_name("x" + std::to_string(i));
    in->set_datatype("FP32");
    in->add_shape(1);
    in->mutable_contents()->add_fp32_contents(1);
  }
  auto decoded = grpc_codec::decode_infer(msg);
  REQUIRE(decoded);
  CHECK(decoded->inputs.size() == 40'000);
  *msg.add_inputs() = msg.inputs(17);
  CHECK(error_of(msg) == "input 'x17' is given twice");
}

TEST_CASE("gRPC answers carry outputs as raw contents, and metadata the full shapes", "[grpc]") {
  infer_response r;
  r.model = "m";
  r.version = "1";
  r.client_id = "id7";
  r.batch_rows = 3;
  r.batch_requests = 2;
  tensor y;
  y.name = "y";
  y.dtype = datatype::INT32;
  y.shape = {1, 2};
  y.data = std::vector<uint8_t>{1, 0, 0, 0, 2, 0, 0, 0};
  r.outputs.push_back(y);
  ::inference::ModelInferResponse out;
  grpc_codec::encode_infer(r, out);
  CHECK(out.model_name() == "m");
  CHECK(out.model_version() == "1");
  CHECK(out.id() == "id7");
  CHECK(out.parameters().at("batch_size").int64_param() == 3);
  CHECK(out.parameters().at("batch_requests").int64_param() == 2);
  REQUIRE(out.outputs_size() == 1);
  CHECK(out.outputs(0).name() == "y");
  CHECK(out.outputs(0).datatype() == "INT32");
  CHECK(out.outputs(0).shape_size() == 2);
  REQUIRE(out.raw_output_contents_size() == 1);
  CHECK(out.raw_output_contents(0) == std::string("\1\0\0\0\2\0\0\0", 8));

  model_config m;
  m.name = "m";
  m.backend = "torchscript";
  m.max_batch_size = 8;
  m.inputs.push_back({"x", datatype::FP32, {3, -1}});
  m.outputs.push_back({"y", datatype::INT64, {5}});
  ::inference::ModelMetadataResponse meta;
  grpc_codec::encode_model_metadata(m, meta);
  CHECK(meta.name() == "m");
  CHECK(meta.platform() == "pytorch_torchscript");
  REQUIRE(meta.inputs_size() == 1);
  CHECK(std::vector<int64_t>(meta.inputs(0).shape().begin(), meta.inputs(0).shape().end())
        == std::vector<int64_t>{-1, 3, -1});
  CHECK(meta.outputs(0).datatype() == "INT64");
}

TEST_CASE("gRPC model configuration is Triton's message, with what the HTTP front's JSON says",
          "[grpc]") {
  model_config m;
  m.name = "m";
  m.version = "3";
  m.max_batch_size = 16;
  m.inputs.push_back({"x", datatype::UINT8, {224, 224, 3}});
  m.outputs.push_back({"y", datatype::FP16, {1000}});
  m.devices = {"cpu", "cuda:1"};
  m.instances = 2;
  m.batching.preferred_batch_sizes = {8, 16};
  m.batching.max_queue_delay_us = 2000;
  m.batching.max_queue_size = 4096;
  m.batching.priority_levels = 2;
  m.batching.default_priority_level = 1;
  m.default_timeout_us = 5'000'000;
  m.response_cache_bytes = 1024;
  m.parameters["factor"] = "2";
  ::inference::ModelConfigResponse out;
  REQUIRE_FALSE(grpc_codec::encode_model_config(m, out));
  auto& c = out.config();
  CHECK(c.name() == "m");
  CHECK(c.platform() == "pytorch_torchscript");
  CHECK(c.backend() == "pytorch");
  REQUIRE(c.version_policy().specific().versions_size() == 1);
  CHECK(c.version_policy().specific().versions(0) == 3);
  CHECK(c.max_batch_size() == 16);
  REQUIRE(c.input_size() == 1);
  CHECK(c.input(0).data_type() == ::inference::TYPE_UINT8);
  CHECK(std::vector<int64_t>(c.input(0).dims().begin(), c.input(0).dims().end())
        == std::vector<int64_t>{224, 224, 3});
  CHECK(c.output(0).data_type() == ::inference::TYPE_FP16);
  REQUIRE(c.instance_group_size() == 2);
  CHECK(c.instance_group(0).kind() == ::inference::ModelInstanceGroup::KIND_CPU);
  CHECK(c.instance_group(1).kind() == ::inference::ModelInstanceGroup::KIND_GPU);
  CHECK(c.instance_group(1).count() == 2);
  REQUIRE(c.instance_group(1).gpus_size() == 1);
  CHECK(c.instance_group(1).gpus(0) == 1);
  REQUIRE(c.has_dynamic_batching());
  auto& b = c.dynamic_batching();
  CHECK(b.preferred_batch_size_size() == 2);
  CHECK(b.max_queue_delay_microseconds() == 2000);
  CHECK(b.priority_levels() == 2);
  CHECK(b.default_priority_level() == 1);
  CHECK(b.default_queue_policy().max_queue_size() == 4096);
  CHECK(b.default_queue_policy().default_timeout_microseconds() == 5'000'000);
  CHECK(b.default_queue_policy().allow_timeout_override());
  CHECK(c.response_cache().enable());
  CHECK(c.parameters().at("factor").string_value() == "2");

  // A version that is not a number is left out of version_policy (its versions are numbers).
  m.version = "v2";
  out.Clear();
  REQUIRE_FALSE(grpc_codec::encode_model_config(m, out));
  CHECK_FALSE(out.config().has_version_policy());
  CHECK(out.config().max_batch_size() == 16);

  // A pipeline is Triton's ensemble: its steps, no batching or instance groups.
  model_config p;
  p.name = "chain";
  p.inputs.push_back({"x", datatype::FP32, {4}});
  p.outputs.push_back({"z", datatype::FP32, {4}});
  p.pipeline.push_back({"first", {{"x", "x"}}, {{"y", "mid"}}});
  p.pipeline.push_back({"second", {{"x", "mid"}}, {{"y", "z"}}});
  out.Clear();
  REQUIRE_FALSE(grpc_codec::encode_model_config(p, out));
  CHECK(out.config().platform() == "ensemble");
  REQUIRE(out.config().has_ensemble_scheduling());
  auto& steps = out.config().ensemble_scheduling().step();
  REQUIRE(steps.size() == 2);
  CHECK(steps[0].model_name() == "first");
  CHECK(steps[0].model_version() == -1);
  CHECK(steps[0].output_map().at("y") == "mid");
  CHECK(steps[1].input_map().at("x") == "mid");
  CHECK(out.config().instance_group_size() == 0);
}

TEST_CASE("gRPC statistics are Triton's message, with the counts the HTTP front's JSON has",
          "[grpc]") {
  deployment_config cfg;
  model_config m;
  m.name = "m";
  m.max_batch_size = 8;
  m.inputs.push_back({"x", datatype::FP32, {4}});
  m.outputs.push_back({"y", datatype::FP32, {4}});
  cfg.models.push_back(m);
  m.name = "other";
  cfg.models.push_back(m);
  metrics stats(cfg);
  auto* mm = stats.model("m");
  mm->inference_count = 12;
  mm->execution_count = 2;
  mm->last_inference_ms = 1795803974932;
  mm->success.add(1000);
  mm->success.add(3000);
  mm->by_batch_size[8].compute_infer.add(500);
  mm->by_batch_size[4].compute_infer.add(300);

  ::inference::ModelStatisticsResponse out;
  REQUIRE_FALSE(grpc_codec::decode_statistics(stats.statistics_json("m"), out));
  REQUIRE(out.model_stats_size() == 1);
  auto& s = out.model_stats(0);
  CHECK(s.name() == "m");
  CHECK(s.version() == "1");
  CHECK(s.inference_count() == 12);
  CHECK(s.execution_count() == 2);
  CHECK(s.last_inference() == 1795803974932);
  CHECK(s.inference_stats().success().count() == 2);
  CHECK(s.inference_stats().success().ns() == 4000);
  REQUIRE(s.batch_stats_size() == 2);
  CHECK(s.batch_stats(0).batch_size() == 4);
  CHECK(s.batch_stats(1).compute_infer().ns() == 500);

  out.Clear();
  REQUIRE_FALSE(grpc_codec::decode_statistics(stats.statistics_json(""), out));
  CHECK(out.model_stats_size() == 2);
  // JSON that is not the message's is an error, not a half-filled answer.
  auto err = grpc_codec::decode_statistics(R"({"model_stats": 7})", out);
  REQUIRE(err);
  CHECK(error_code(err) == errc::internal);
}

TEST_CASE("gRPC BYTES inputs come from bytes_contents or raw contents with length prefixes",
          "[grpc][bytes]") {
  auto msg = request_with_input("BYTES", {2});
  msg.mutable_inputs(0)->mutable_contents()->add_bytes_contents("http://h/a.jpg");
  msg.mutable_inputs(0)->mutable_contents()->add_bytes_contents(std::string("\0\1", 2));
  (*msg.mutable_parameters())["images_are"].set_string_param("urls");
  auto r = grpc_codec::decode_infer(msg);
  REQUIRE(r);
  auto& t = r->inputs.at(0);
  CHECK(t.consistent());
  auto e = bytes_elements(t.view(), 2);
  REQUIRE(e);
  CHECK((*e)[0] == "http://h/a.jpg");
  CHECK((*e)[1] == std::string_view("\0\1", 2));
  CHECK(r->parameters.at("images_are") == "urls");

  auto raw = request_with_input("BYTES", {1});
  std::vector<uint8_t> one;
  append_bytes_element(one, "png bytes");
  raw.add_raw_input_contents(reinterpret_cast<const char*>(one.data()), one.size());
  auto r2 = grpc_codec::decode_infer(raw);
  REQUIRE(r2);
  CHECK(r2->inputs.at(0).view() == std::string_view(reinterpret_cast<const char*>(one.data()),
                                                     one.size()));
  raw.set_raw_input_contents(0, std::string("\x09\0\0\0png", 7)); // a length past the end
  CHECK(error_of(raw) == "input 'x': raw_input_contents[0] is not 1 BYTES elements, each a "
                         "4-byte little-endian length followed by that many bytes");
}
