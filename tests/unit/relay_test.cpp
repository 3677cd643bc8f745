// The relay between a batcher and an isolated worker with shared memory, in one process: the
// "worker process" here is an actor that maps the same segment.
#include <catch2/catch.hpp>

#include <mutex>

#include <caf/all.hpp>

#include "actors/batcher.hpp"
#include "actors/gateway.hpp"
#include "actors/model_directory.hpp"
#include "actors/worker_process.hpp"
#include "test_support.hpp"

using namespace actorserve;
using namespace actorserve::test;

namespace {

struct seen_jobs {
  std::mutex mtx;
  std::vector<std::size_t> spans; // per job: how many span numbers it carried
};

struct shm_worker_state {
  caf::actor relay;
  static inline const char* name = "shm_worker";
};

/// Registers like a worker process, then answers each batch with its inputs (read from the
/// shared memory where the job says they are) as outputs "y".
caf::behavior shm_worker(caf::stateful_actor<shm_worker_state>* self, caf::actor broker,
                         std::shared_ptr<shared_segment> memory, seen_jobs* seen) {
  self->request(broker, std::chrono::seconds(5), register_atom::value, std::string("m/cpu/0"),
                std::string("token"))
    .then([self](caf::actor& relay) {
      self->state.relay = relay;
      self->send(relay, worker_ready_atom::value, caf::actor_cast<caf::actor>(self),
                 std::string("m/cpu/0"), uint32_t{1});
    });
  return {
    [self, memory, seen](execute_atom, batch_job& job) {
      {
        std::lock_guard<std::mutex> guard{seen->mtx};
        seen->spans.push_back(job.shm_spans.size());
      }
      batch_outputs out;
      out.batch_id = job.batch_id;
      std::size_t k = 0;
      for (auto& r : job.requests) {
        auto y = r.inputs.at(0);
        y.name = "y";
        if (!job.shm_spans.empty()) {
          CHECK(r.inputs[0].data.empty()); // the bytes are not in the message
          auto* p = memory->data() + job.shm_spans[k];
          y.data = byte_buffer(std::vector<uint8_t>(p, p + job.shm_spans[k + 1]));
          k += 2;
        }
        out.per_request.push_back({y});
      }
      self->send(self->state.relay, batch_done_atom::value, std::move(out));
    },
    [](fault_atom, fault_spec&) {},
    [self](drain_atom) -> caf::result<bool> { // (test hook: leave through the relay)
      auto rp = self->make_response_promise<bool>();
      self->request(self->state.relay, std::chrono::seconds(5), drain_atom::value,
                    caf::actor_cast<caf::actor>(self))
        .then([rp](bool ok) mutable { rp.deliver(ok); },
              [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
      return rp;
    },
  };
}

} // namespace

TEST_CASE("a relay hands an isolated worker its batches through shared memory and frees them",
          "[actors][isolation]") {
  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::actorserve>();
  caf::actor_system sys{cfg};
  auto deployment = std::make_shared<deployment_config>();
  auto m = small_model(16);
  m.batching.max_queue_delay_us = 0;
  deployment->models.push_back(m);
  auto directory = std::make_shared<model_directory>(*deployment);
  auto gateway = spawn_gateway(sys, deployment, directory);
  auto batcher = spawn_batcher(
    sys, std::shared_ptr<const model_config>(deployment, &deployment->models[0]), directory, nullptr);
  auto cells = std::make_shared<batcher_cells>();
  (*cells)["m"] = std::make_shared<handle_cell<batcher_actor>>();
  (*cells)["m"]->set(batcher);
  auto registry = std::make_shared<segment_registry>();
  auto memory = shared_segment::create(64); // one request of up to 8 rows (64 bytes) fits
  registry->put("m/cpu/0", memory);
  auto broker = spawn_worker_broker(sys, "token", cells, registry);
  seen_jobs seen;
  auto worker = sys.spawn(shm_worker, broker, memory, &seen);

  caf::scoped_actor client{sys};
  bool ready = false;
  for (int i = 0; i < 500 && !ready; ++i) {
    client->request(gateway, std::chrono::seconds(1), ready_atom::value)
      .receive([&](bool r) { ready = r; }, [](caf::error&) {});
    if (!ready)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(ready);
  auto infer = [&](int64_t rows, float base) {
    std::vector<float> got;
    client->request(gateway, std::chrono::seconds(5), infer_atom::value, request_with_rows(rows, base))
      .receive([&](infer_response& r) { got = floats(r.outputs.at(0)); },
               [&](caf::error& e) { FAIL(to_string(e)); });
    return got;
  };
  // 8 rows (64 bytes) through shared memory, twice (the region is free again after each);
  // 9 rows (72 bytes) do not fit: over the connection. Each answer is its own input.
  for (float base : {0.f, 100.f}) {
    auto y = infer(8, base);
    REQUIRE(y.size() == 16);
    CHECK(y[0] == base);
    CHECK(y[15] == base + 15);
  }
  auto y = infer(9, 7);
  REQUIRE(y.size() == 18);
  CHECK(y[17] == 7 + 17);
  {
    std::lock_guard<std::mutex> guard{seen.mtx};
    CHECK(seen.spans == std::vector<std::size_t>{2, 2, 0});
  }
  CHECK(memory->in_use() == 0);
  // The worker leaves through the relay: the batcher knows it as the relay and removes it.
  client->request(worker, std::chrono::seconds(5), drain_atom::value)
    .receive([](bool ok) { CHECK(ok); }, [](caf::error& e) { FAIL(to_string(e)); });
  bool still = true;
  client->request(gateway, std::chrono::seconds(1), ready_atom::value)
    .receive([&](bool r) { still = r; }, [](caf::error&) {});
  CHECK_FALSE(still);
  for (auto a : {caf::actor_cast<caf::actor>(gateway), caf::actor_cast<caf::actor>(batcher), broker,
                 worker})
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}
