#include "actors/worker.hpp"

#include <chrono>
#include <random>
#include <thread>

#include <caf/all.hpp>

#include "runtime/batch_assembly.hpp"
#include "runtime/error.hpp"
#include "runtime/log.hpp"
#include "runtime/model_backend.hpp"

namespace actorserve {

std::string worker_spec::name() const {
  return model->name + "/" + device + "/" + std::to_string(instance);
}

namespace {

struct worker_state {
  worker_spec spec;
  std::string label; // "model/device/instance"
  batcher_actor batcher;
  std::unique_ptr<model_backend> backend;
  std::shared_ptr<metrics> stats;        // keeps the registry alive
  fault_spec armed{"", "", 0, 1.0};      // injected fault for the next batches (count 0: none)
  std::mt19937 rng{std::random_device{}()};
  worker_metrics* own = nullptr;         // this worker's entry in it, if any
  static inline const char* name = "worker";
};

using worker_ptr = worker_actor::stateful_pointer<worker_state>;

/// Loads the model and runs the warm-up batches; throws on failure.
void load_and_warm_up(worker_state& st) {
  auto t0 = std::chrono::steady_clock::now();
  st.backend = backend_registry::global().create(
    st.spec.model->backend, backend_context{*st.spec.model, st.spec.device, st.spec.instance});
  auto& m = *st.spec.model;
  for (auto rows : m.warmup.batch_sizes)
    for (uint32_t i = 0; i < m.warmup.iterations; ++i) {
      auto inputs = warmup_inputs(m, rows);
      auto outputs = st.backend->run(inputs);
      std::vector<infer_request> one(1);
      one[0].inputs = std::move(inputs);
      split_batch(m, one, std::move(outputs)); // throws unless outputs match the declaration
    }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::steady_clock::now() - t0).count();
  logging::info({"worker", st.spec.model->name, 0, {}, st.label}, "loaded and warmed up in {} ms",
                ms);
}

worker_actor::behavior_type worker_fn(worker_ptr self, worker_spec spec, batcher_actor batcher,
                                      std::shared_ptr<metrics> stats) {
  auto& st = self->state;
  st.spec = std::move(spec);
  st.label = st.spec.name();
  st.batcher = batcher;
  st.stats = std::move(stats);
  if (st.stats)
    if (auto* mm = st.stats->model(st.spec.model->name))
      st.own = mm->worker(st.label);
  // An exception escaping a handler ends this worker (the supervisor restarts it); keep its
  // text in the exit reason so that the requests it fails say what happened.
  self->set_exception_handler([](caf::scheduled_actor*, std::exception_ptr& eptr) -> caf::error {
    try {
      std::rethrow_exception(eptr);
    } catch (const std::exception& e) {
      return make_error(errc::worker_failed, e.what());
    } catch (...) {
      return make_error(errc::worker_failed, "unknown exception");
    }
  });
  try {
    load_and_warm_up(st);
  } catch (const std::exception& e) {
    logging::error({"worker", st.spec.model->name, 0, {}, st.label}, "failed to start: {}",
                   e.what());
    self->quit(make_error(errc::worker_failed, st.label + " failed to start: " + e.what()));
    return {[](execute_atom, batch_job&) {}, [](fault_atom, fault_spec&) {}};
  }
  if (st.own)
    st.own->set_phase(worker_phase::ready);
  self->send(batcher, worker_ready_atom::value, caf::actor_cast<worker_actor>(self), st.label);
  return {
    [self](fault_atom, fault_spec& spec) {
      logging::warn({"worker", self->state.spec.model->name, 0, {}, self->state.label},
                    "fault armed: {} for the next {} batch(es), probability {}", spec.kind,
                    spec.count, spec.probability);
      self->state.armed = std::move(spec);
    },
    [self](execute_atom, batch_job& job) {
      auto& st = self->state;
      auto& m = *st.spec.model;
      auto t0 = std::chrono::steady_clock::now();
      std::string injected;
      if (st.armed.count > 0) {
        --st.armed.count;
        if (std::uniform_real_distribution<double>(0, 1)(st.rng) < st.armed.probability)
          injected = st.armed.kind;
      }
      if (st.spec.fault_injection) {
        for (auto& r : job.requests) {
          if (r.fault.empty() && !injected.empty())
            r.fault = injected; // an armed fault acts through this batch's first request
          injected.clear();
          if (r.fault == "crash") {
            logging::warn({"worker", m.name, r.id, r.trace_id, st.label},
                          "fault injection: crashing");
            // An exception escaping a handler kills the actor, like any bug would.
            throw std::runtime_error("fault injection: worker " + st.label + " crashed");
          }
          if (r.fault == "hang") { // like a stuck kernel: the call never returns
            logging::warn({"worker", m.name, r.id, r.trace_id, st.label}, "fault injection: hanging");
            std::this_thread::sleep_for(std::chrono::hours(1));
          }
          if (r.fault == "slow") {
            logging::warn({"worker", m.name, r.id, r.trace_id, st.label},
                          "fault injection: slowing down by 300 ms");
            std::this_thread::sleep_for(std::chrono::milliseconds(300));
          }
          if (r.fault == "throw") {
            self->send(st.batcher, batch_failed_atom::value, job.batch_id,
                       make_error(errc::inference_failed,
                                  "worker " + st.label + ": fault injection: backend exception"));
            return;
          }
        }
      }
      try {
        using std::chrono::steady_clock;
        auto ns = [](steady_clock::time_point a, steady_clock::time_point b) {
          return std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
        };
        auto inputs = assemble_batch(m, job.requests);
        auto t1 = steady_clock::now();
        auto outputs = st.backend->run(inputs);
        auto t2 = steady_clock::now();
        batch_outputs out;
        out.batch_id = job.batch_id;
        out.per_request = split_batch(m, job.requests, std::move(outputs));
        auto t3 = steady_clock::now();
        out.input_ns = ns(t0, t1);
        out.infer_ns = ns(t1, t2);
        out.output_ns = ns(t2, t3);
        out.compute_ns = ns(t0, t3);
        if (st.own) {
          st.own->batches.fetch_add(1, std::memory_order_relaxed);
          st.own->compute_seconds.observe(static_cast<double>(out.compute_ns) * 1e-9);
        }
        self->send(st.batcher, batch_done_atom::value, std::move(out));
      } catch (const std::exception& e) {
        logging::warn({"worker", m.name, 0, {}, st.label}, "batch {} of {} requests failed: {}",
                      job.batch_id, job.requests.size(), e.what());
        self->send(st.batcher, batch_failed_atom::value, job.batch_id,
                   make_error(errc::inference_failed, "worker " + st.label + ": " + e.what()));
      }
    },
  };
}

} // namespace

worker_actor spawn_worker(caf::actor_system& sys, const worker_spec& spec, batcher_actor batcher,
                          std::shared_ptr<metrics> stats) {
  return sys.spawn<caf::detached>(worker_fn, spec, std::move(batcher), std::move(stats));
}

} // namespace actorserve
