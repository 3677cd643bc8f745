#include <catch2/catch.hpp>

#include <caf/all.hpp>

#include "actors/batch_answers.hpp"
#include "runtime/error.hpp"
#include "runtime/messages.hpp"
#include "test_support.hpp"

using namespace actorserve;
using namespace actorserve::test;

namespace {

bool operator_eq(const tensor& a, const tensor& b) {
  return a.name == b.name && a.dtype == b.dtype && a.shape == b.shape && a.data == b.data;
}

bool operator_eq(const std::vector<tensor>& a, const std::vector<tensor>& b) {
  if (a.size() != b.size())
    return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!operator_eq(a[i], b[i]))
      return false;
  return true;
}

bool operator_eq(const infer_request& a, const infer_request& b) {
  return a.id == b.id && a.model == b.model && a.version == b.version
         && a.client_id == b.client_id && operator_eq(a.inputs, b.inputs)
         && a.outputs == b.outputs && a.timeout_us == b.timeout_us
         && a.deadline_ns == b.deadline_ns && a.fault == b.fault && a.trace_id == b.trace_id
         && a.span_id == b.span_id && a.sampled == b.sampled && a.priority == b.priority && a.parameters == b.parameters;
}

template <class T>
T round_trip(caf::actor_system& sys, const T& x) {
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  T copy = x;
  REQUIRE_FALSE(sink(copy));
  T out;
  caf::binary_deserializer source{sys, buf};
  REQUIRE_FALSE(source(out));
  return out;
}

infer_request sample_request() {
  infer_request r = request_with_rows(2, 1.5f);
  r.id = 42;
  r.version = "1";
  r.client_id = "client-7";
  r.outputs = {"y"};
  r.timeout_us = 1234;
  r.deadline_ns = 987654321;
  r.fault = "throw";
  r.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  r.span_id = "00f067aa0ba902b7";
  r.sampled = true;
  r.priority = 2;
  r.parameters["images_are"] = "bytes";
  tensor b;
  b.name = "mask";
  b.dtype = datatype::BOOL;
  b.shape = {2, 1};
  b.data = {1, 0};
  r.inputs.push_back(b);
  return r;
}

} // namespace

TEST_CASE("every registered message type survives CAF's binary serializer", "[messages]") {
  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::actorserve>();
  caf::actor_system sys{cfg};
  // Adding a type to the block without adding it here makes this fail.
  CHECK(caf::id_block::actorserve::end - caf::id_block::actorserve::begin == 11);
  fault_spec fs{"m/cpu/1", "hang", 3, 0.5};
  auto fs2 = round_trip(sys, fs);
  CHECK(fs2.worker == "m/cpu/1");
  CHECK(fs2.kind == "hang");
  CHECK(fs2.count == 3);
  CHECK(fs2.probability == 0.5);

  auto t = round_trip(sys, fp32("x", {2, 2}, {1, 2, 3, 4}));
  CHECK(operator_eq(t, fp32("x", {2, 2}, {1, 2, 3, 4})));

  auto req = sample_request();
  CHECK(operator_eq(round_trip(sys, req), req));

  infer_response res;
  res.id = 9;
  res.model = "m";
  res.version = "1";
  res.client_id = "c";
  res.outputs = {fp32("y", {1, 2}, {5, 6})};
  res.batch_rows = 3;
  res.batch_requests = 2;
  res.queue_ns = 100;
  res.compute_ns = 200;
  res.worker = "m/cpu/0";
  auto res2 = round_trip(sys, res);
  CHECK(res2.id == 9);
  CHECK(res2.model == "m");
  CHECK(res2.version == "1");
  CHECK(res2.client_id == "c");
  CHECK(operator_eq(res2.outputs, res.outputs));
  CHECK(res2.batch_rows == 3);
  CHECK(res2.batch_requests == 2);
  CHECK(res2.queue_ns == 100);
  CHECK(res2.compute_ns == 200);
  CHECK(res2.worker == "m/cpu/0");

  batch_job job{7, {req, req}, {128, 16, 4096, 0}, std::string(32, 'a'), std::string(16, 'b'),
                std::make_shared<batch_answers>(2)};
  auto job2 = round_trip(sys, job);
  CHECK(job2.answers == nullptr); // (a worker in another process answers the batcher only)
  CHECK(job2.batch_id == 7);
  CHECK(job2.trace_id == job.trace_id);
  CHECK(job2.span_id == job.span_id);
  REQUIRE(job2.requests.size() == 2);
  CHECK(operator_eq(job2.requests[1], req));
  CHECK(job2.shm_spans == std::vector<uint64_t>{128, 16, 4096, 0});

  batch_outputs outs{8, {{fp32("y", {1}, {1})}, {}}, 55};
  outs.answered_by_worker = true;
  auto outs2 = round_trip(sys, outs);
  CHECK_FALSE(outs2.answered_by_worker);
  CHECK(outs2.batch_id == 8);
  REQUIRE(outs2.per_request.size() == 2);
  CHECK(operator_eq(outs2.per_request[0], outs.per_request[0]));
  CHECK(outs2.per_request[1].empty());
  CHECK(outs2.compute_ns == 55);

  model_status st{"m", 2, 1, 77};
  auto st2 = round_trip(sys, st);
  CHECK(st2.model == "m");
  CHECK(st2.ready_workers == 2);
  CHECK(st2.starting_workers == 1);
  CHECK(st2.batches == 77);

  std::vector<tensor> ts{fp32("a", {1}, {1}), fp32("b", {2}, {2, 3})};
  CHECK(operator_eq(round_trip(sys, ts), ts));

  stage_input in;
  tensor urls;
  urls.name = "urls";
  urls.dtype = datatype::BYTES;
  urls.shape = {2};
  std::vector<uint8_t> bytes;
  append_bytes_element(bytes, "http://a/1.jpg");
  append_bytes_element(bytes, "");
  urls.data = bytes;
  in.tensors.push_back(urls);
  in.parameters["images_are"] = "urls";
  in.deadline_ns = 123;
  in.trace_id = "t";
  in.span_id = "s";
  in.sampled = true;
  auto in2 = round_trip(sys, in);
  REQUIRE(in2.tensors.size() == 1);
  CHECK(in2.tensors[0].consistent());
  CHECK(in2.tensors[0].view() == urls.view());
  CHECK(in2.parameters.at("images_are") == "urls");
  CHECK(in2.deadline_ns == 123);
  CHECK(in2.trace_id == "t");
  CHECK(in2.span_id == "s");
  CHECK(in2.sampled);

  stage_output out;
  out.tensors.push_back(fp32("pixels", {1}, {0.5f}));
  out.errors.push_back({3, errc::upstream_failed, "HTTP 404"});
  auto out2 = round_trip(sys, out);
  REQUIRE(out2.errors.size() == 1);
  CHECK(out2.errors[0].index == 3);
  CHECK(out2.errors[0].code == errc::upstream_failed);
  CHECK(out2.errors[0].message == "HTTP 404");
  CHECK(operator_eq(out2.tensors, out.tensors));
  CHECK(round_trip(sys, out.errors[0]).message == "HTTP 404");
}

TEST_CASE("project errors keep their code and message through serialization", "[messages]") {
  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::actorserve>();
  caf::actor_system sys{cfg};
  auto err = make_error(errc::overloaded, "queue full");
  auto back = round_trip(sys, err);
  CHECK(error_code(back) == errc::overloaded);
  CHECK(error_message(back) == "queue full");
  CHECK(error_code(caf::make_error(caf::sec::request_timeout)) == errc::deadline_exceeded);
  // A request that reached an actor as it stopped (a batcher its supervisor was stopping) was not
  // worked on: "not available, try again" (503), not an internal failure.
  auto gone = caf::make_error(caf::sec::request_receiver_down);
  CHECK(error_code(gone) == errc::not_ready);
  CHECK(error_message(gone).rfind("not available: ", 0) == 0);
}
