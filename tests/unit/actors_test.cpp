// Gateway and batcher under CAF's deterministic test coordinator: virtual time, no threads.
#include <algorithm>
#include <cmath>
#include <limits>

#include <catch2/catch.hpp>

#include <caf/all.hpp>

#include "actors/batch_answers.hpp"
#include "actors/batcher.hpp"
#include "actors/gateway.hpp"
#include "actors/worker.hpp"
#include "runtime/error.hpp"
#include "deterministic_system.hpp"
#include "test_support.hpp"

using namespace actorserve;
using namespace actorserve::test;
using namespace std::chrono_literals;

namespace {

/// A batch's outputs as the fake workers give them: each request's first input, named "y".
batch_outputs echo(const batch_job& job) {
  batch_outputs out;
  out.batch_id = job.batch_id;
  for (auto& r : job.requests) {
    auto y = r.inputs.at(0);
    y.name = "y";
    out.per_request.push_back({y});
  }
  return out;
}

/// A worker that answers each batch with its inputs as outputs, or holds it when told to.
struct fake_worker_state {
  batcher_actor batcher;
  std::vector<batch_job>* held = nullptr; // when set, jobs are kept instead of answered
  std::vector<std::size_t>* batch_sizes = nullptr;
  static inline const char* name = "fake_worker";
};

worker_actor::behavior_type
fake_worker(worker_actor::stateful_pointer<fake_worker_state> self, batcher_actor batcher,
            std::vector<batch_job>* held, std::vector<std::size_t>* sizes, uint32_t capacity) {
  self->state.batcher = batcher;
  self->state.held = held;
  self->state.batch_sizes = sizes;
  self->send(batcher, worker_ready_atom::value, caf::actor_cast<caf::actor>(self),
             std::string("m/fake/0"), capacity);
  return {
    [self](execute_atom, batch_job& job) {
      if (self->state.batch_sizes)
        self->state.batch_sizes->push_back(job.requests.size());
      if (self->state.held) {
        self->state.held->push_back(std::move(job));
        return;
      }
      self->send(self->state.batcher, batch_done_atom::value, echo(job));
    },
    [](fault_atom, fault_spec&) {},
  };
}

/// A worker whose backend throws on any batch holding a request whose first value is `poison`
/// (all batches when `poison` is NaN: a broken worker); other batches are echoed.
worker_actor::behavior_type picky_worker(worker_actor::pointer self, batcher_actor batcher,
                                         float poison, std::vector<std::size_t>* sizes) {
  self->send(batcher, worker_ready_atom::value, caf::actor_cast<caf::actor>(self),
             std::string("m/picky/0"), uint32_t{1});
  return {
    [=](execute_atom, batch_job& job) {
      sizes->push_back(job.requests.size());
      batch_outputs out;
      out.batch_id = job.batch_id;
      for (auto& r : job.requests) {
        auto first = floats(r.inputs.at(0)).at(0);
        if (std::isnan(poison) || first == poison) {
          self->send(batcher, batch_failed_atom::value, job.batch_id,
                     make_error(errc::inference_failed, "the model rejects " + std::to_string(first)));
          return;
        }
        auto y = r.inputs.at(0);
        y.name = "y";
        out.per_request.push_back({y});
      }
      self->send(batcher, batch_done_atom::value, std::move(out));
    },
    [](fault_atom, fault_spec&) {},
  };
}

struct fixture : test::deterministic_system {
  std::shared_ptr<deployment_config> deployment = std::make_shared<deployment_config>();
  std::shared_ptr<model_directory> directory;
  gateway_actor gateway;
  batcher_actor batcher;
  std::vector<caf::actor> others;
  std::vector<caf::expected<infer_response>> results;

  explicit fixture(model_config m) {
    deployment->models.push_back(std::move(m));
    directory = std::make_shared<model_directory>(*deployment);
    gateway = spawn_gateway(*sys, deployment, directory);
    batcher = spawn_batcher(*sys, std::shared_ptr<const model_config>(deployment,
                                                                      &deployment->models[0]),
                            directory, nullptr); // it registers itself in the directory
    sched->run();
  }

  ~fixture() {
    caf::anon_send_exit(gateway, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(batcher, caf::exit_reason::user_shutdown);
    for (auto& a : others)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    sched->run();
  }

  worker_actor add_worker(std::vector<batch_job>* held = nullptr,
                          std::vector<std::size_t>* sizes = nullptr, uint32_t capacity = 1) {
    auto w = sys->spawn(fake_worker, batcher, held, sizes, capacity);
    others.push_back(caf::actor_cast<caf::actor>(w));
    sched->run();
    return w;
  }

  /// Runs what is due, lets `d` of virtual time pass and runs what that made due.
  void after(std::chrono::milliseconds d) {
    sched->run();
    sched->advance_time(d);
    sched->run();
  }

  /// Sends a request through the gateway from a client actor; the answer lands in `results`.
  void send(infer_request req) {
    auto* out = &results;
    auto gw = gateway;
    auto client = sys->spawn([out, gw, req](caf::event_based_actor* self) {
      self->request(gw, caf::infinite, infer_atom::value, req)
        .then([out](infer_response& r) { out->emplace_back(std::move(r)); },
              [out](caf::error& e) { out->emplace_back(std::move(e)); });
    });
    others.push_back(client);
  }
};

model_config batching_model() {
  auto m = small_model(8);
  m.batching.max_queue_delay_us = 1000;
  m.batching.max_queue_size = 4;
  m.default_timeout_us = 50'000;
  return m;
}

/// Batches go out at once; the queue holds 16.
model_config no_delay_model(uint32_t max_batch) {
  auto m = small_model(max_batch);
  m.batching.max_queue_delay_us = 0;
  m.batching.max_queue_size = 16;
  return m;
}

} // namespace

TEST_CASE("a worker's name gives back its device, on its own node or another", "[actors]") {
  worker_spec spec;
  spec.model = std::make_shared<model_config>(small_model(4));
  spec.device = "cuda:1";
  spec.instance = 2;
  CHECK(spec.name() == "m/cuda:1/2");
  CHECK(worker_spec::device_of(spec.name()) == "cuda:1");
  spec.node = "w1";
  CHECK(spec.name() == "m/w1/cuda:1/2");
  CHECK(worker_spec::device_of(spec.name()) == "cuda:1");
  CHECK(worker_spec::device_of("m") == "");
  CHECK(worker_spec::device_of("m/0") == "");
}

TEST_CASE("the batcher forms one batch of the requests that arrive within the delay", "[actors]") {
  fixture f{batching_model()};
  std::vector<std::size_t> sizes;
  f.add_worker(nullptr, &sizes);
  for (int i = 0; i < 3; ++i)
    f.send(request_with_rows(1, static_cast<float>(10 * i)));
  f.sched->run();
  CHECK(f.results.empty()); // waiting for the delay to fill the batch
  f.sched->advance_time(1ms);
  f.sched->run();
  REQUIRE(f.results.size() == 3);
  CHECK(sizes == std::vector<std::size_t>{3});
  for (auto& r : f.results) {
    REQUIRE(r);
    CHECK(r->batch_requests == 3);
    CHECK(r->batch_rows == 3);
    CHECK(r->worker == "m/fake/0");
  }
  // Outputs come back to the request they belong to.
  std::vector<float> firsts;
  for (auto& r : f.results)
    firsts.push_back(floats(r->outputs.at(0)).at(0));
  std::sort(firsts.begin(), firsts.end());
  CHECK(firsts == std::vector<float>{0, 10, 20});
}

TEST_CASE("a queued request is answered with a timeout at its deadline, not later", "[actors]") {
  fixture f{batching_model()};
  f.send(request_with_rows(1)); // no worker: nothing can run it...
  f.sched->run();
  // ...but with no worker at all (none starting either), the batcher fails fast.
  REQUIRE(f.results.size() == 1);
  CHECK(error_code(f.results[0].error()) == errc::not_ready);

  f.results.clear();
  caf::anon_send(f.batcher, worker_starting_atom::value, std::string("m/cpu/0"));
  f.sched->run();
  auto req = request_with_rows(1);
  req.timeout_us = 5000;
  f.send(req);
  f.sched->run();
  CHECK(f.results.empty());
  f.sched->advance_time(4ms);
  f.sched->run();
  CHECK(f.results.empty());
  f.sched->advance_time(1ms);
  f.sched->run();
  REQUIRE(f.results.size() == 1);
  REQUIRE_FALSE(f.results[0]);
  CHECK(error_code(f.results[0].error()) == errc::deadline_exceeded);
  CHECK(error_message(f.results[0].error()).find("in the queue") != std::string::npos);
}

TEST_CASE("a full queue rejects with an overload error", "[actors]") {
  fixture f{batching_model()}; // max_queue_size 4
  caf::anon_send(f.batcher, worker_starting_atom::value, std::string("m/cpu/0"));
  f.sched->run();
  for (int i = 0; i < 5; ++i)
    f.send(request_with_rows(1));
  f.sched->run();
  REQUIRE(f.results.size() == 1);
  CHECK(error_code(f.results[0].error()) == errc::overloaded);
}

TEST_CASE("without retries, requests in flight on a worker that dies get an error naming it",
          "[actors]") {
  auto m = batching_model();
  m.max_retries = 0;
  fixture f{m};
  std::vector<batch_job> held;
  auto w = f.add_worker(&held);
  f.send(request_with_rows(1));
  f.send(request_with_rows(2));
  f.after(1ms);
  REQUIRE(held.size() == 1);
  CHECK(f.results.empty());
  caf::anon_send_exit(w, caf::exit_reason::kill);
  f.sched->run();
  REQUIRE(f.results.size() == 2);
  for (auto& r : f.results) {
    REQUIRE_FALSE(r);
    CHECK(error_code(r.error()) == errc::worker_failed);
    CHECK(error_message(r.error()).find("m/fake/0") != std::string::npos);
  }
}

TEST_CASE("a failed batch fails exactly its own requests", "[actors]") {
  auto m = batching_model();
  m.max_batch_size = 1; // one request per batch
  m.max_retries = 0;
  fixture f{m};
  std::vector<batch_job> held;
  f.add_worker(&held);
  f.send(request_with_rows(1));
  f.after(1ms);
  REQUIRE(held.size() == 1);
  caf::anon_send(f.batcher, batch_failed_atom::value, held[0].batch_id,
                 make_error(errc::inference_failed, "boom"));
  f.sched->run();
  REQUIRE(f.results.size() == 1);
  CHECK(error_message(f.results[0].error()) == "boom");
}

TEST_CASE("the gateway rejects unknown models, bad inputs and timeouts over the maximum",
          "[actors]") {
  fixture f{batching_model()};
  f.add_worker();
  auto unknown = request_with_rows(1);
  unknown.model = "nope";
  f.send(unknown);
  auto wrong = request_with_rows(1);
  wrong.inputs[0].shape = {1, 3};
  f.send(wrong);
  auto slow = request_with_rows(1);
  slow.timeout_us = 100'000'000;
  f.send(slow);
  auto version = request_with_rows(1);
  version.version = "2";
  f.send(version);
  f.sched->run();
  REQUIRE(f.results.size() == 4);
  CHECK(error_code(f.results[0].error()) == errc::model_not_found);
  CHECK(error_code(f.results[1].error()) == errc::invalid_input);
  CHECK(error_message(f.results[2].error())
        == "parameter 'timeout' must be between 1 and 60000000 microseconds (max_timeout_us of "
           "model 'm'), got 100000000");
  CHECK(error_message(f.results[3].error())
        == "model 'm' has no version '2' (it serves version '1')");
}

TEST_CASE("the gateway reports a model ready only while a worker of it is ready", "[actors]") {
  fixture f{batching_model()};
  auto ask_ready = [&] {
    auto answer = std::make_shared<std::optional<bool>>();
    auto gw = f.gateway;
    f.others.push_back(f.sys->spawn([answer, gw](caf::event_based_actor* self) {
      self->request(gw, caf::infinite, ready_atom::value).then([answer](bool b) { *answer = b; });
    }));
    f.sched->run();
    REQUIRE(answer->has_value());
    return **answer;
  };
  CHECK_FALSE(ask_ready());
  auto w = f.add_worker();
  CHECK(ask_ready());
  caf::anon_send_exit(w, caf::exit_reason::kill);
  f.sched->run();
  CHECK_FALSE(ask_ready());
}

TEST_CASE("requests of a worker that dies are retried on another worker", "[actors][retry]") {
  fixture f{batching_model()};
  std::vector<batch_job> held;
  auto doomed = f.add_worker(&held);
  f.send(request_with_rows(1, 7));
  f.after(1ms);
  REQUIRE(held.size() == 1);
  f.add_worker(); // a healthy second worker
  caf::anon_send_exit(doomed, caf::exit_reason::kill);
  f.after(1ms);
  REQUIRE(f.results.size() == 1);
  REQUIRE(f.results[0]);
  CHECK(floats(f.results[0]->outputs.at(0)).at(0) == 7);
}

TEST_CASE("a request the backend fails on two workers is not retried again and lists both",
          "[actors][retry]") {
  auto m = batching_model();
  m.max_batch_size = 1;
  fixture f{m};
  std::vector<batch_job> held_a, held_b;
  f.add_worker(&held_a);
  f.send(request_with_rows(1));
  f.after(1ms);
  REQUIRE(held_a.size() == 1);
  f.add_worker(&held_b);
  caf::anon_send(f.batcher, batch_failed_atom::value, held_a[0].batch_id,
                 make_error(errc::inference_failed, "boom on a"));
  f.after(1ms);
  REQUIRE(held_b.size() == 1); // retried on the other worker, never on the one that failed it
  CHECK(held_a.size() == 1);
  caf::anon_send(f.batcher, batch_failed_atom::value, held_b[0].batch_id,
                 make_error(errc::inference_failed, "boom on b"));
  f.sched->run();
  REQUIRE(f.results.size() == 1);
  REQUIRE_FALSE(f.results[0]);
  auto msg = error_message(f.results[0].error());
  CHECK(msg.find("failed after 2 attempts (the backend failed on it on two workers)") != std::string::npos);
  CHECK(msg.find("[1] boom on a; [2] boom on b") != std::string::npos);
}

TEST_CASE("a request the backend throws on fails alone: its batch is split until it is found, "
          "the others are answered, and the worker's breaker stays closed",
          "[actors][retry]") {
  // Before, with one worker the whole batch waited for another worker until its deadline (504);
  // with two, the innocent requests were retried together with the poison one and failed too.
  auto m = batching_model();
  m.batching.max_queue_size = 16;
  m.breaker.failure_threshold = 2;
  fixture f{m};
  std::vector<std::size_t> sizes;
  f.others.push_back(caf::actor_cast<caf::actor>(f.sys->spawn(picky_worker, f.batcher, 300.0f, &sizes)));
  f.sched->run();
  for (float v : {100, 200, 300, 400, 500, 600, 700, 800}) // the fourth is the poison
    f.send(request_with_rows(1, v));
  f.after(1ms);
  REQUIRE(f.results.size() == 8);
  std::vector<float> answered;
  std::string poison_error;
  for (auto& r : f.results) {
    if (r)
      answered.push_back(floats(r->outputs.at(0)).at(0));
    else
      poison_error = error_message(r.error());
  }
  std::sort(answered.begin(), answered.end());
  CHECK(answered == std::vector<float>{100, 200, 400, 500, 600, 700, 800});
  CHECK(poison_error == "the model rejects 300.000000"); // its own error, at once
  // 8 fails; its halves: 4 (fails: 2 + 2, the second fails: 1 + 1) and 4; the lone poison
  // request is not retried on the same worker, which would throw again.
  CHECK(sizes == std::vector<std::size_t>{8, 4, 2, 2, 1, 1, 4});
  // Splits are not the worker's failures: one lone failure leaves the breaker (threshold 2)
  // closed, and the next request is served.
  f.results.clear();
  f.send(request_with_rows(1, 5));
  f.after(1ms);
  REQUIRE(f.results.size() == 1);
  CHECK(f.results[0]);
}

TEST_CASE("a worker that throws on every batch still opens its breaker: lone requests fail on it",
          "[actors][breaker]") {
  auto m = batching_model();
  m.batching.max_queue_size = 16;
  m.breaker.failure_threshold = 2;
  m.breaker.reset_timeout_ms = 10'000;
  fixture f{m};
  std::vector<std::size_t> sizes;
  f.others.push_back(caf::actor_cast<caf::actor>(
    f.sys->spawn(picky_worker, f.batcher, std::numeric_limits<float>::quiet_NaN(), &sizes)));
  f.sched->run();
  for (float v : {1, 2, 3, 4})
    f.send(request_with_rows(1, v));
  f.after(1ms);
  // 4 (inconclusive), 2 (inconclusive), 1, 1: two failures alone open the breaker; the other
  // half waits for the probe and reaches its deadline.
  CHECK(sizes == std::vector<std::size_t>{4, 2, 1, 1});
  f.sched->advance_time(60ms);
  f.sched->run();
  REQUIRE(f.results.size() == 4);
  for (auto& r : f.results)
    CHECK_FALSE(r);
  f.results.clear();
  f.send(request_with_rows(1, 9));
  f.sched->run();
  REQUIRE(f.results.size() == 1);
  CHECK(error_message(f.results[0].error()).find("open circuit breaker") != std::string::npos);
}

TEST_CASE("a worker whose breaker is open gets no batches until its reset timeout",
          "[actors][breaker]") {
  auto m = batching_model();
  m.max_batch_size = 1;
  m.max_retries = 0;
  m.breaker.failure_threshold = 2;
  m.breaker.reset_timeout_ms = 100;
  fixture f{m};
  std::vector<batch_job> held;
  f.add_worker(&held);
  for (int i = 0; i < 2; ++i) {
    f.send(request_with_rows(1));
    f.after(1ms);
    REQUIRE(held.size() == static_cast<std::size_t>(i + 1));
    caf::anon_send(f.batcher, batch_failed_atom::value, held.back().batch_id,
                   make_error(errc::worker_failed, "flaky"));
    f.sched->run();
  }
  // Open: with every worker open the model fails fast instead of queueing.
  f.results.clear();
  f.send(request_with_rows(1));
  f.sched->run();
  REQUIRE(f.results.size() == 1);
  CHECK(error_code(f.results[0].error()) == errc::not_ready);
  CHECK(error_message(f.results[0].error()).find("open circuit breaker") != std::string::npos);
  // After the reset timeout one probe goes through; its success closes the breaker.
  f.sched->advance_time(100ms);
  f.results.clear();
  f.send(request_with_rows(1));
  f.after(1ms);
  REQUIRE(held.size() == 3);
  batch_outputs ok;
  ok.batch_id = held.back().batch_id;
  ok.per_request.push_back({fp32("y", {1, 2}, {0, 1})});
  caf::anon_send(f.batcher, batch_done_atom::value, ok);
  f.sched->run();
  REQUIRE(f.results.size() == 1);
  CHECK(f.results[0]);
}

TEST_CASE("a batch that outlives execution_timeout marks its worker hung and is retried",
          "[actors][hang]") {
  auto m = batching_model();
  m.execution_timeout_ms = 50;
  m.default_timeout_us = 1'000'000;
  fixture f{m};
  std::vector<batch_job> held;
  f.add_worker(&held);
  f.send(request_with_rows(1, 3));
  f.after(1ms);
  REQUIRE(held.size() == 1);
  f.add_worker(); // a healthy one to take the retry
  f.sched->advance_time(50ms);
  f.after(1ms);
  REQUIRE(f.results.size() == 1);
  REQUIRE(f.results[0]);
  CHECK(floats(f.results[0]->outputs.at(0)).at(0) == 3);
}

TEST_CASE("a worker that holds two batches gets a second one while the first runs, not a third",
          "[actors]") {
  fixture f{no_delay_model(2)};
  std::vector<batch_job> held;
  f.add_worker(&held, nullptr, 2);
  for (int i = 0; i < 3; ++i)
    f.send(request_with_rows(2, static_cast<float>(i)));
  f.sched->run();
  REQUIRE(held.size() == 2); // two full batches in flight, the third waits
  CHECK(f.results.empty());
  // The first finishes: the third goes to the worker at once.
  batch_outputs out;
  out.batch_id = held[0].batch_id;
  for (auto& r : held[0].requests)
    out.per_request.push_back({r.inputs.at(0)});
  out.per_request[0][0].name = "y";
  caf::anon_send(f.batcher, batch_done_atom::value, std::move(out));
  f.sched->run();
  CHECK(f.results.size() == 1);
  CHECK(held.size() == 3);
}

namespace {

/// A worker holding two batches, taught that 4 rows take its device 4 ms (staging 0.2 ms), is
/// busy with a full batch while 2 rows wait; returns how many batches it holds 3 ms and 4 ms
/// after the full batch went to it.
std::pair<std::size_t, std::size_t> batches_held_while_busy(bool stage_ahead) {
  auto m = no_delay_model(4);
  m.batching.stage_ahead = stage_ahead;
  fixture f{m};
  std::vector<batch_job> held;
  f.add_worker(&held, nullptr, 2);
  auto finish = [&](const batch_job& job, int64_t infer_ns, int64_t input_ns) {
    batch_outputs out;
    out.batch_id = job.batch_id;
    for (auto& r : job.requests)
      out.per_request.push_back({r.inputs.at(0)});
    for (auto& o : out.per_request)
      o[0].name = "y";
    out.infer_ns = infer_ns;
    out.input_ns = input_ns;
    caf::anon_send(f.batcher, batch_done_atom::value, std::move(out));
    f.sched->run();
  };
  // A first batch teaches the batcher: 4 rows took the device 4 ms, staging 0.2 ms.
  f.send(request_with_rows(4));
  f.sched->run();
  REQUIRE(held.size() == 1);
  finish(held[0], 4'000'000, 200'000);
  REQUIRE(f.results.size() == 1);
  // The next full batch goes at once; a partial one waits while the device has work for long.
  f.send(request_with_rows(4));
  f.sched->run();
  REQUIRE(held.size() == 2);
  f.send(request_with_rows(2));
  f.after(3ms);
  auto after_3ms = held.size();
  f.sched->advance_time(1ms);
  f.sched->run();
  return {after_3ms, held.size()};
}

} // namespace

TEST_CASE("a request its batch could not be done for before its deadline is answered, not run",
          "[actors]") {
  // Under overload, requests waited until their batch ran and expired in it: the device computed
  // answers nobody would get (with 2,048 clients on a device for 4,600 a second and 200 ms
  // deadlines, success fell to 0 of 101,175). Now they are answered 504 at dispatch, and the
  // device's time goes to those that can still make it.
  auto m = no_delay_model(4);
  m.default_timeout_us = 50'000;
  fixture f{m};
  std::vector<batch_job> held;
  f.add_worker(&held);
  auto finish = [&](const batch_job& job) { // 1 ms of device time per row, staging 0.2 ms
    batch_outputs out;
    out.batch_id = job.batch_id;
    for (auto& r : job.requests) {
      out.per_request.push_back({r.inputs.at(0)});
      out.per_request.back()[0].name = "y";
    }
    out.infer_ns = 1'000'000 * static_cast<int64_t>(job.requests.size() * 4);
    out.input_ns = 200'000;
    caf::anon_send(f.batcher, batch_done_atom::value, std::move(out));
    f.sched->run();
  };
  f.send(request_with_rows(4)); // teaches the estimate
  f.sched->run();
  REQUIRE(held.size() == 1);
  finish(held[0]);
  f.send(request_with_rows(4, 1)); // keeps the worker busy
  f.sched->run();
  REQUIRE(held.size() == 2);
  auto hurried = request_with_rows(1, 2);
  hurried.timeout_us = 3'000;
  f.send(hurried);
  f.send(request_with_rows(1, 3));
  f.after(1ms);
  f.results.clear();
  // The worker is free 1 ms later: a batch of the 2 waiting rows would take 2 ms and staging,
  // past the hurried request's deadline 2 ms away.
  finish(held[1]);
  REQUIRE(f.results.size() == 2);
  REQUIRE_FALSE(f.results[1]);
  CHECK(error_code(f.results[1].error()) == errc::deadline_exceeded);
  CHECK(error_message(f.results[1].error()).find("would reach its deadline in 2000 us, before its "
                                                 "batch could be done")
        != std::string::npos);
  REQUIRE(held.size() == 3);
  REQUIRE(held[2].requests.size() == 1); // the other one runs, alone
  CHECK(floats(held[2].requests[0].inputs.at(0)).at(0) == 3);
}

TEST_CASE("a busy worker gets a partial batch just before its device runs out of work",
          "[actors]") {
  // 4 ms after the full batch went, its expected end (staging + 4 ms) is one lead (staging +
  // margin) away: the 2 rows go then, so that they are staged when the device is free.
  CHECK(batches_held_while_busy(true) == std::pair<std::size_t, std::size_t>{2, 3});
  // batching.stage_ahead false: they wait for a full batch or an idle worker.
  CHECK(batches_held_while_busy(false) == std::pair<std::size_t, std::size_t>{2, 2});
}

TEST_CASE("a partial batch is not staged on a busy worker but waits until one is idle",
          "[actors]") {
  fixture f{no_delay_model(4)};
  std::vector<batch_job> held;
  f.add_worker(&held, nullptr, 2);
  f.send(request_with_rows(4));
  f.sched->run();
  REQUIRE(held.size() == 1); // a full batch on the idle worker
  f.send(request_with_rows(1));
  f.send(request_with_rows(2));
  f.sched->run();
  CHECK(held.size() == 1); // 3 rows of 4: they wait and may still grow
  f.send(request_with_rows(1));
  f.sched->run();
  REQUIRE(held.size() == 2); // now full: staged in the worker's second slot
  CHECK(held[1].requests.size() == 3);
}

TEST_CASE("a request of a higher priority runs before the lower ones queued ahead of it",
          "[actors][priority]") {
  auto m = no_delay_model(1);
  m.batching.priority_levels = 2;
  m.batching.default_priority_level = 2;
  fixture f{m};
  std::vector<batch_job> held;
  f.add_worker(&held);
  f.send(request_with_rows(1, 0)); // the blocker: the worker holds it
  f.run();
  REQUIRE(held.size() == 1);
  f.send(request_with_rows(1, 10)); // queued, the default (lowest) level
  f.run();
  f.send(request_with_rows(1, 20));
  f.run();
  auto high = request_with_rows(1, 30);
  high.priority = 1;
  f.send(high); // last to arrive
  f.run();
  auto first_value = [](const batch_job& job) { return floats(job.requests.at(0).inputs.at(0))[0]; };
  std::vector<float> order;
  for (int i = 0; i < 4; ++i) { // each batch finished in turn: the next one goes to the worker
    REQUIRE(held.size() == static_cast<std::size_t>(i + 1));
    order.push_back(first_value(held[i]));
    batch_outputs out;
    out.batch_id = held[i].batch_id;
    auto y = held[i].requests.at(0).inputs.at(0);
    y.name = "y";
    out.per_request.push_back({y});
    caf::anon_send(f.batcher, batch_done_atom::value, std::move(out));
    f.run();
  }
  CHECK(order == std::vector<float>{0, 30, 10, 20});
  CHECK(f.results.size() == 4);
}

TEST_CASE("a worker in the batcher's process answers its batch itself, each request once",
          "[actors]") {
  fixture f{batching_model()}; // batches leave 1 ms after their first request
  std::vector<batch_job> held;
  f.add_worker(&held);
  auto soon = request_with_rows(1, 1.0f);
  soon.timeout_us = 5000;
  f.send(soon);
  f.send(request_with_rows(1, 2.0f)); // (the model's 50 ms)
  f.after(1ms);
  REQUIRE(held.size() == 1);
  auto answers = held[0].answers;
  REQUIRE(answers); // (a worker of this process, no trace: the worker answers)
  REQUIRE(answers->for_worker());
  CHECK(answers->open() == 2);
  // The first request's deadline passes while its batch runs: the batcher answers it.
  f.sched->advance_time(4ms);
  f.sched->run();
  REQUIRE(f.results.size() == 1);
  REQUIRE_FALSE(f.results[0]);
  CHECK(error_code(f.results[0].error()) == errc::deadline_exceeded);
  CHECK(answers->open() == 1);
  // The batch ends: the worker answers the other request, and only it.
  auto out = echo(held[0]);
  out.compute_ns = 1234;
  answers->answer_all(out);
  CHECK(out.answered_by_worker);
  CHECK(out.per_request[0].size() == 1); // (not its to answer: left)
  CHECK(out.per_request[1].empty());
  f.sched->run();
  REQUIRE(f.results.size() == 2);
  REQUIRE(f.results[1]);
  CHECK(floats(f.results[1]->outputs.at(0)).at(0) == 2.0f);
  CHECK(f.results[1]->batch_requests == 2);
  CHECK(f.results[1]->compute_ns == 1234);
  CHECK(f.results[1]->worker == "m/fake/0");
  CHECK(answers->open() == 0);
  // The batcher, told the batch is done, answers neither again.
  caf::anon_send(f.batcher, batch_done_atom::value, std::move(out));
  f.after(100ms);
  CHECK(f.results.size() == 2);
}

TEST_CASE("requests a worker answered before it died are neither retried nor answered again",
          "[actors][retry]") {
  fixture f{batching_model()}; // (retries on: its requests would go to another worker)
  std::vector<batch_job> held, held_later;
  auto doomed = f.add_worker(&held);
  f.send(request_with_rows(1, 7));
  f.after(1ms);
  REQUIRE(held.size() == 1);
  REQUIRE(held[0].answers);
  auto out = echo(held[0]);
  held[0].answers->answer_all(out); // answered; then it dies before its batch_done
  f.sched->run();
  REQUIRE(f.results.size() == 1);
  f.add_worker(&held_later); // (where a retry would go)
  caf::anon_send_exit(doomed, caf::exit_reason::kill);
  f.after(10ms);
  CHECK(f.results.size() == 1);
  REQUIRE(f.results[0]);
  CHECK(floats(f.results[0]->outputs.at(0)).at(0) == 7.0f);
  CHECK(held_later.empty());
}

namespace {

model_config lingering_model(uint32_t max_batch, uint32_t linger_us) {
  auto m = no_delay_model(max_batch);
  m.linger_us = linger_us;
  return m;
}

} // namespace

TEST_CASE("the next batch goes to the worker that finished last while workers linger, else in "
          "turn",
          "[actors]") {
  for (uint32_t linger : {200u, 0u}) {
    INFO("linger_us " << linger);
    fixture f{lingering_model(4, linger)};
    std::vector<std::size_t> first, second;
    f.add_worker(nullptr, &first);
    f.add_worker(nullptr, &second);
    for (int i = 0; i < 4; ++i) { // one at a time: each answered before the next is sent
      f.send(request_with_rows(1));
      f.sched->run();
    }
    REQUIRE(f.results.size() == 4);
    if (linger > 0) // (still awake: worker.cpp's linger)
      CHECK((first.size() + second.size() == 4 && (first.empty() || second.empty())));
    else
      CHECK((first.size() == 2 && second.size() == 2));
  }
}

TEST_CASE("a worker is told to linger after its batch only while the model's other workers are "
          "idle",
          "[actors]") {
  for (uint32_t linger : {200u, 0u}) {
    INFO("linger_us " << linger);
    fixture f{lingering_model(1, linger)};
    std::vector<batch_job> first, second;
    f.add_worker(&first);
    f.add_worker(&second);
    f.send(request_with_rows(1, 1.0f)); // to one worker while the other is idle
    f.sched->run();
    f.send(request_with_rows(1, 2.0f)); // to the other while the first one runs
    f.sched->run();
    REQUIRE((first.size() == 1 && second.size() == 1));
    auto& alone = floats(first[0].requests.at(0).inputs.at(0)).at(0) == 1.0f ? first : second;
    auto& beside = &alone == &first ? second : first;
    CHECK(alone[0].linger == (linger > 0));
    CHECK_FALSE(beside[0].linger);
    // Both answered: the next one runs alone again.
    for (auto* held : {&alone, &beside})
      caf::anon_send(f.batcher, batch_done_atom::value, echo(held->back()));
    f.sched->run();
    REQUIRE(f.results.size() == 2);
    f.send(request_with_rows(1, 3.0f));
    f.sched->run();
    REQUIRE(first.size() + second.size() == 3);
    auto& third = first.size() == 2 ? first[1] : second[1];
    CHECK(third.linger == (linger > 0));
  }
}
