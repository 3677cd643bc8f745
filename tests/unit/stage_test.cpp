// The stage API: a stage's parameters as the deployment file gives them, stage steps checked in
// pipelines, and item stages (items spread over a stage's own threads, joined in order).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>

#include <caf/all.hpp>

#include "actors/item_stage.hpp"
#include "runtime/error.hpp"
#include "runtime/stage.hpp"

using namespace actorserve;

namespace {

const std::vector<std::string> backends{"scale"};

tensor bytes_tensor(std::initializer_list<std::string_view> elements) {
  std::vector<uint8_t> data;
  for (auto e : elements)
    append_bytes_element(data, e);
  tensor t;
  t.name = "text";
  t.dtype = datatype::BYTES;
  t.shape = {static_cast<int64_t>(elements.size())};
  t.data = std::move(data);
  return t;
}

tensor_spec spec(const char* name, datatype dt, std::vector<int64_t> dims = {}) {
  tensor_spec s;
  s.name = name;
  s.dtype = dt;
  s.dims = std::move(dims);
  return s;
}

/// A stage for these tests: BYTES text -> the text in upper case (BYTES) and its length (INT32);
/// an item "fail" fails with invalid_input, an item "throw" throws.
item_stage_spec upper_spec(uint32_t threads) {
  item_stage_spec s;
  s.name = "upper";
  s.threads = threads;
  s.outputs = {spec("upper", datatype::BYTES), spec("length", datatype::INT32)};
  s.work = [](const stage_input& item) -> caf::expected<item_parts> {
    std::string text(only_element(item.tensors.at(0)));
    if (text == "fail")
      return make_error(errc::invalid_input, "cannot upper-case 'fail'");
    if (text == "throw")
      throw std::runtime_error("a bug");
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    auto n = static_cast<int32_t>(text.size());
    std::vector<uint8_t> length(4);
    std::memcpy(length.data(), &n, 4);
    return item_parts{{text.begin(), text.end()}, length};
  };
  return s;
}

stage_registrar upper_registrar{
  "test_upper",
  {[](stage_parameters& p) {
     p.integer("threads", 1, 1, 8);
     p.string("case", "upper", {"upper", "lower"});
     return stage_signature{{spec("text", datatype::BYTES)},
                            {spec("upper", datatype::BYTES), spec("length", datatype::INT32)}};
   },
   [](caf::actor_system& sys, stage_context& ctx) {
     return spawn_item_stage(sys, upper_spec(static_cast<uint32_t>(
                                    ctx.parameters.integer("threads", 1, 1, 8))));
   }}};

std::string pipeline_with(const std::string& step, const std::string& output_dtype = "INT32") {
  return R"({"models": [{"name": "p", "max_batch_size": 0,
      "inputs": [{"name": "words", "datatype": "BYTES", "dims": [-1]}],
      "outputs": [{"name": "n", "datatype": ")" + output_dtype + R"(", "dims": [-1]}],
      "pipeline": [)" + step + "]}]}";
}

std::string errors_of(const std::string& text) {
  auto cfg = parse_deployment(text, "", backends);
  return cfg ? "" : error_message(cfg.error());
}

stage_input input_of(tensor t, int64_t left_ms = 10'000) {
  stage_input in;
  in.tensors.push_back(std::move(t));
  in.deadline_ns = steady_now_ns() + left_ms * 1'000'000;
  return in;
}

} // namespace

TEST_CASE("stage parameters are checked as the deployment's other settings are", "[stage]") {
  stage_parameters p("models[0].pipeline[1].parameters",
                     R"({"threads": 0, "mode": "fast", "mean": [1, 2], "allow": ["a", 3],
                         "extra": true, "ok": 5})");
  CHECK(p.integer("threads", 4, 1, 64) == 4);
  CHECK(p.string("mode", "exact", {"exact", "approx"}) == "exact");
  CHECK(p.numbers("mean", {0, 0, 0}, 3) == std::vector<double>{0, 0, 0});
  CHECK(p.strings("allow").empty());
  CHECK(p.integer("ok", 1, 1, 10) == 5);
  CHECK(p.boolean("absent", true));
  CHECK(p.errors() == std::vector<std::string>{
    "models[0].pipeline[1].parameters.threads: expected an integer in [1, 64], got 0",
    "models[0].pipeline[1].parameters.mode: expected \"exact\" or \"approx\", got \"fast\"",
    "models[0].pipeline[1].parameters.mean: expected an array of 3 numbers, got [1,2]",
    "models[0].pipeline[1].parameters.allow: expected an array of strings, got 3 in it",
    "models[0].pipeline[1].parameters.extra: not a parameter of this stage"});
}

TEST_CASE("a pipeline step runs a stage with parameters, checked like a model step",
          "[stage][config]") {
  auto ok = pipeline_with(R"({"stage": "test_upper", "parameters": {"threads": 2},
                              "inputs": {"text": "words"}, "outputs": {"length": "n"}})");
  auto cfg = parse_deployment(ok, "", backends);
  REQUIRE(cfg);
  auto& step = cfg->models[0].pipeline[0];
  CHECK(step.is_stage());
  CHECK(step.stage == "test_upper");
  CHECK(step.parameters == R"({"threads":2})");

  CHECK(errors_of(pipeline_with(R"({"stage": "nope", "inputs": {"text": "words"},
                                    "outputs": {"length": "n"}})"))
          .find("models[0].pipeline[0].stage: no stage \"nope\" is registered (known: ")
        != std::string::npos);
  CHECK(errors_of(pipeline_with(R"({"stage": "test_upper", "parameters": {"case": "title"},
                                    "inputs": {"text": "words"}, "outputs": {"length": "n"}})"))
        == "models[0].pipeline[0].parameters.case: expected \"upper\" or \"lower\", got \"title\"");
  CHECK(errors_of(pipeline_with(R"({"stage": "test_upper", "model": "m",
                                    "inputs": {"text": "words"}, "outputs": {"length": "n"}})"))
        == "models[0].pipeline[0]: expected either \"model\" (a model of this deployment) or "
           "\"stage\" (a registered stage), not both");
  // The stage's own tensors: what it makes is checked against the pipeline's declarations.
  CHECK(errors_of(pipeline_with(R"({"stage": "test_upper", "inputs": {"text": "words"},
                                    "outputs": {"length": "n"}})", "FP32"))
        == "models[0].outputs[0]: \"n\" is made as INT32 [-1] but declared FP32 [-1]");
  CHECK(errors_of(pipeline_with(R"({"stage": "test_upper", "inputs": {"txt": "words"},
                                    "outputs": {"length": "n"}})"))
        == "models[0].pipeline[0].inputs: stage \"test_upper\"'s input \"text\" is given no "
           "pipeline tensor\nmodels[0].pipeline[0].inputs.txt: stage \"test_upper\" has no input "
           "\"txt\"");
}

TEST_CASE("a backend model takes no BYTES tensors: those are for pipeline stages",
          "[stage][config]") {
  auto text = R"({"models": [{"name": "m", "backend": "scale", "max_batch_size": 8,
       "inputs": [{"name": "x", "datatype": "BYTES", "dims": [1]}],
       "outputs": [{"name": "y", "datatype": "FP32", "dims": [1]}]}]})";
  CHECK(errors_of(text) == "models[0].inputs[0].datatype: BYTES tensors are taken and made by "
                           "pipeline stages, not by a backend model; make this a pipeline whose "
                           "first step is a stage (e.g. \"fetch\" or \"decode\")");
}

TEST_CASE("split_items gives each item its own tensor, sharing the bytes", "[stage]") {
  auto items = split_items(bytes_tensor({"a", "bcd", ""}));
  REQUIRE(items.size() == 3);
  CHECK(only_element(items[1]) == "bcd");
  CHECK(items[1].shape == std::vector<int64_t>{1});
  CHECK(only_element(items[2]).empty());
  tensor f;
  f.dtype = datatype::INT16;
  f.shape = {2, 3};
  f.data = std::vector<uint8_t>(12, 7);
  auto rows = split_items(f);
  REQUIRE(rows.size() == 2);
  CHECK(rows[1].shape == std::vector<int64_t>{1, 3});
  CHECK(rows[1].data.size() == 6);
  f.shape = {3, 3}; // (bytes that do not match the shape)
  CHECK(split_items(f).empty());
}

TEST_CASE("an item stage works items on its own threads and joins them in order",
          "[stage][actors]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto stage = spawn_item_stage(sys, upper_spec(3));
  caf::scoped_actor self{sys};
  stage_output out;
  self->request(stage, std::chrono::seconds(10), stage_atom::value,
                input_of(bytes_tensor({"a", "bcd", "xy", "", "hello"})))
    .receive([&](stage_output& o) { out = std::move(o); },
             [&](caf::error& e) { FAIL(error_message(e)); });
  REQUIRE(out.errors.empty());
  REQUIRE(out.tensors.size() == 2);
  CHECK(out.tensors[0].name == "upper");
  CHECK(out.tensors[0].shape == std::vector<int64_t>{5});
  auto upper = bytes_elements(out.tensors[0].view(), 5);
  REQUIRE(upper);
  CHECK(*upper == std::vector<std::string_view>{"A", "BCD", "XY", "", "HELLO"});
  CHECK(out.tensors[1].shape == std::vector<int64_t>{5});
  std::vector<int32_t> lengths(5);
  std::memcpy(lengths.data(), out.tensors[1].data.data(), 20);
  CHECK(lengths == std::vector<int32_t>{1, 3, 2, 0, 5});

  // Items fail alone, each with its index and reason; a stage's exception is that item's error.
  self->request(stage, std::chrono::seconds(10), stage_atom::value,
                input_of(bytes_tensor({"ok", "fail", "throw"})))
    .receive([&](stage_output& o) { out = std::move(o); },
             [&](caf::error& e) { FAIL(error_message(e)); });
  CHECK(out.tensors.empty());
  REQUIRE(out.errors.size() == 2);
  CHECK(out.errors[0].index == 1);
  CHECK(out.errors[0].code == errc::invalid_input);
  CHECK(out.errors[0].message == "cannot upper-case 'fail'");
  CHECK(out.errors[1].index == 2);
  CHECK(out.errors[1].code == errc::internal);
  CHECK(out.errors[1].message == "a bug");

  // Past its deadline, or with its client gone, no item is worked on.
  auto late = input_of(bytes_tensor({"a", "b"}), -1);
  self->request(stage, std::chrono::seconds(10), stage_atom::value, late)
    .receive([&](stage_output& o) { out = std::move(o); },
             [&](caf::error& e) { FAIL(error_message(e)); });
  REQUIRE(out.errors.size() == 2);
  CHECK(out.errors[0].code == errc::deadline_exceeded);
  auto gone = input_of(bytes_tensor({"a"}));
  gone.cancelled = std::make_shared<std::atomic<bool>>(true);
  self->request(stage, std::chrono::seconds(10), stage_atom::value, gone)
    .receive([&](stage_output& o) { out = std::move(o); },
             [&](caf::error& e) { FAIL(error_message(e)); });
  REQUIRE(out.errors.size() == 1);
  CHECK(out.errors[0].code == errc::cancelled);
  self->send_exit(stage, caf::exit_reason::user_shutdown);
}
