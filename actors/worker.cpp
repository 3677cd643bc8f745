#include "actors/worker.hpp"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <sched.h>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "actors/batch_answers.hpp"
#include "runtime/batch_assembly.hpp"
#include "runtime/error.hpp"
#include "runtime/log.hpp"
#include "runtime/tracing.hpp"
#include "runtime/model_backend.hpp"

namespace actorserve {

std::string worker_spec::name() const {
  return model->name + "/" + (node.empty() ? "" : node + "/") + device + "/"
         + std::to_string(instance);
}

std::string worker_spec::device_of(const std::string& name) {
  auto last = name.rfind('/');
  if (last == std::string::npos || last == 0)
    return {};
  auto before = name.rfind('/', last - 1);
  return before == std::string::npos ? std::string{} : name.substr(before + 1, last - before - 1);
}

namespace {

using std::chrono::steady_clock;

/// A batch the backend started, with what answering it needs.
struct started_batch {
  batch_job job; // owns the request tensors the backend's views point into
  std::unique_ptr<pending_batch> pending;
  steady_clock::time_point t0, t1; // received, started
};

/// Makes the job's input tensors views of the shared memory its spans point into; what was
/// wrong ("" when nothing).
std::string take_from_shared_memory(const std::shared_ptr<const shared_segment>& memory,
                                    batch_job& job) {
  if (!memory)
    return "the batch's inputs are in shared memory, but this worker has none";
  std::size_t k = 0;
  for (auto& r : job.requests)
    for (auto& t : r.inputs) {
      if (k + 1 >= job.shm_spans.size())
        return "the batch names fewer shared-memory spans than it has inputs";
      auto offset = job.shm_spans[k], length = job.shm_spans[k + 1];
      k += 2;
      if (offset > memory->size() || length > memory->size() - offset)
        return "a shared-memory span lies outside the segment";
      t.data = byte_buffer::view(memory, memory->data() + offset, length);
    }
  if (k != job.shm_spans.size())
    return "the batch names more shared-memory spans than it has inputs";
  job.shm_spans.clear();
  return {};
}

struct worker_state;
void answer(const worker_state& st, started_batch& b, steady_clock::time_point& last_done);

/// Waits for started batches on its own thread and answers the batcher, so that the worker's
/// thread stages and starts the next batch while the device still runs this one. Used when the
/// backend holds more than one batch at once (gpu.inflight_batches).
class completer {
public:
  explicit completer(const worker_state& st) : st_(st), thread_([this] { loop(); }) {}

  ~completer() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join(); // answers what is queued first
  }

  void push(started_batch b) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      queue_.push_back(std::move(b));
    }
    cv_.notify_all();
  }

private:
  void loop() {
    for (;;) {
      started_batch b;
      {
        std::unique_lock<std::mutex> lock{mtx_};
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty())
          return;
        b = std::move(queue_.front());
        queue_.pop_front();
      }
      answer(st_, b, last_done_);
    }
  }

  const worker_state& st_;
  steady_clock::time_point last_done_; // when the previous batch's outputs were there
  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<started_batch> queue_;
  bool stop_ = false;
  std::thread thread_;
};

struct worker_state {
  worker_spec spec;
  std::string label; // "model/device/instance"
  batcher_actor batcher;
  std::unique_ptr<model_backend> backend;
  std::shared_ptr<metrics> stats;        // keeps the registry alive
  fault_spec armed{"", "", 0, 1.0};      // injected fault for the next batches (count 0: none)
  std::mt19937 rng{std::random_device{}()};
  worker_metrics* own = nullptr;         // this worker's entry in it, if any
  steady_clock::time_point last_done;    // the previous batch's outputs (without a completer)
  std::unique_ptr<completer> waiter;      // when the backend holds several batches; last member:
                                          // destroyed (joined) first
  static inline const char* name = "worker";
};

/// Waits for a started batch's outputs and answers the batcher: batch_done (having answered the
/// requests first where the batcher handed over their answers: batch_answers.hpp), or
/// batch_failed when the backend threw. Runs on the worker's thread or on its completer's (which
/// keeps `last_done`). The batch's infer time counts from its start or, when it queued behind the
/// previous batch on the device, from that one's end: what the batch itself cost the device.
/// The batch's compute span, recorded here (by this node's or process's exporter) as a child of
/// the batch span the batcher made when one of its requests is sampled: `out` when it ran,
/// `error` when it failed.
void record_compute(const worker_state& st, const started_batch& b, const batch_outputs* out,
                    const char* error) {
  if (b.job.span_id.empty() || !tracing::on())
    return;
  auto s = tracing::make_child(b.job.trace_id, b.job.span_id, "compute " + st.spec.model->name,
                               b.t0, steady_clock::now());
  s.set("actorserve.worker", st.label)
    .set("actorserve.device", st.spec.device)
    .set("actorserve.batch.id", static_cast<int64_t>(b.job.batch_id))
    .set("actorserve.batch.requests", static_cast<int64_t>(b.job.requests.size()));
  if (out)
    s.set("actorserve.compute.input_ns", out->input_ns)
      .set("actorserve.compute.infer_ns", out->infer_ns)
      .set("actorserve.compute.output_ns", out->output_ns);
  if (error) {
    s.error = true;
    s.status_message = error;
  }
  tracing::record(std::move(s));
}

void answer(const worker_state& st, started_batch& b, steady_clock::time_point& last_done) {
  auto& m = *st.spec.model;
  try {
    auto outputs = b.pending->wait();
    auto t2 = steady_clock::now();
    auto ns = [](steady_clock::time_point x, steady_clock::time_point y) {
      return std::chrono::duration_cast<std::chrono::nanoseconds>(y - x).count();
    };
    batch_outputs out;
    out.batch_id = b.job.batch_id;
    out.per_request = split_batch(m, b.job.requests, std::move(outputs));
    auto t3 = steady_clock::now();
    out.input_ns = ns(b.t0, b.t1);
    out.infer_ns = ns(std::max(b.t1, last_done), t2);
    last_done = t2;
    out.output_ns = ns(t2, t3);
    out.compute_ns = ns(b.t0, t3);
    logging::debug({"worker", m.name, 0, {}, st.label}, "batch {} done", out.batch_id);
    record_compute(st, b, &out, nullptr);
    if (b.job.answers) // (a worker in the batcher's process: it answers the requests itself)
      b.job.answers->answer_all(out);
    caf::anon_send(st.batcher, batch_done_atom::value, std::move(out));
  } catch (const std::exception& e) {
    logging::warn({"worker", m.name, 0, {}, st.label}, "batch {} of {} requests failed: {}",
                  b.job.batch_id, b.job.requests.size(), e.what());
    record_compute(st, b, nullptr, e.what());
    caf::anon_send(st.batcher, batch_failed_atom::value, b.job.batch_id,
                   make_error(errc::inference_failed, "worker " + st.label + ": " + e.what()));
  }
}

/// The batch sizes warm-up runs: the configured ones and, on a GPU, every bucket batches are
/// padded to, so that cuDNN autotuning and CUDA graph capture never happen on a user's request.
std::vector<uint32_t> warmup_sizes(const worker_spec& spec) {
  std::set<uint32_t> sizes(spec.model->warmup.batch_sizes.begin(),
                           spec.model->warmup.batch_sizes.end());
  if (spec.device != "cpu")
    for (auto b : spec.model->gpu_buckets())
      sizes.insert(b);
  return {sizes.rbegin(), sizes.rend()}; // largest first: allocations reach their peak once
}

using worker_ptr = worker_actor::stateful_pointer<worker_state>;

/// Loads the model and runs the warm-up batches; throws on failure.
void load_and_warm_up(worker_state& st) {
  auto t0 = std::chrono::steady_clock::now();
  auto warn = [model = st.spec.model->name, label = st.label](const std::string& what) {
    logging::warn({"worker", model, 0, {}, label}, "{}", what);
  };
  st.backend = backend_registry::global().create(
    st.spec.model->backend,
    backend_context{*st.spec.model, st.spec.device, st.spec.instance, warn});
  auto& m = *st.spec.model;
  for (auto rows : warmup_sizes(st.spec))
    for (uint32_t i = 0; i < m.warmup.iterations; ++i) {
      auto inputs = warmup_inputs(m, rows);
      auto outputs = st.backend->run(inputs);
      std::vector<infer_request> one(1);
      one[0].inputs = std::move(inputs);
      split_batch(m, one, std::move(outputs)); // throws unless outputs match the declaration
    }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::steady_clock::now() - t0).count();
  logging::info({"worker", st.spec.model->name, 0, {}, st.label},
                "loaded and warmed up in {} ms (batch sizes {}, {} batch(es) in flight)", ms,
                fmt::join(warmup_sizes(st.spec), ","), st.backend->max_inflight());
}

/// Once the worker exits (its model unloaded, or the node stopping), its phase in the metrics
/// says stopped, unless its supervisor says it restarts. The functor keeps the registry alive: it
/// runs after the state is gone, and after await_all_actors_done() has let main go on.
void report_stop_on_exit(worker_ptr self) {
  self->attach_functor([own = self->state.own, keep = self->state.stats](const caf::error&) {
    own->set_phase(worker_phase::stopped);
  });
}

/// Acts on the faults the batch carries (fault injection): an armed fault acts through its first
/// request. Crashing throws (like any bug, it kills the worker); hanging never returns; slow waits
/// 300 ms. Returns false when the batch failed ("throw": answered as a backend exception).
bool inject_faults(worker_ptr self, batch_job& job) {
  auto& st = self->state;
  std::string injected;
  if (st.armed.count > 0) {
    --st.armed.count;
    if (std::uniform_real_distribution<double>(0, 1)(st.rng) < st.armed.probability)
      injected = st.armed.kind;
  }
  if (!st.spec.fault_injection)
    return true;
  for (auto& r : job.requests) {
    if (r.fault.empty() && !injected.empty())
      r.fault = injected;
    injected.clear();
    logging::fields ctx{"worker", st.spec.model->name, r.id, r.trace_id, st.label};
    if (r.fault == "crash") {
      logging::warn(ctx, "fault injection: crashing");
      throw std::runtime_error("fault injection: worker " + st.label + " crashed");
    }
    if (r.fault == "hang") { // like a stuck kernel: the call never returns
      logging::warn(ctx, "fault injection: hanging");
      std::this_thread::sleep_for(std::chrono::hours(1));
    }
    if (r.fault == "slow") {
      logging::warn(ctx, "fault injection: slowing down by 300 ms");
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    if (r.fault == "throw") {
      self->send(st.batcher, batch_failed_atom::value, job.batch_id,
                 make_error(errc::inference_failed,
                            "worker " + st.label + ": fault injection: backend exception"));
      return false;
    }
  }
  return true;
}

/// Stays awake for the next batch up to the model's linger_us (model_config::linger_us), yielding
/// the core to any thread that can run; any message ends it, and the actor then takes the
/// message without going to sleep. Only after a batch the batcher says to (batch_job::linger) and
/// that came within linger_us of the one before it: at a sparse load every wait would be in vain.
void linger(worker_ptr self) {
  auto until = steady_clock::now() + std::chrono::microseconds(self->state.spec.model->linger_us);
  while (self->mailbox().empty() && steady_clock::now() < until)
    sched_yield();
}

/// Runs a batch: its inputs from shared memory where they are there, faults, then the backend;
/// the answer goes to the batcher when the backend is done (at once, or through the completer).
void execute(worker_ptr self, batch_job& job) {
  auto& st = self->state;
  logging::debug({"worker", st.spec.model->name, 0, {}, st.label}, "batch {} of {} request(s)",
                 job.batch_id, job.requests.size());
  if (!job.shm_spans.empty()) {
    if (auto why = take_from_shared_memory(st.spec.batch_memory, job); !why.empty()) {
      self->send(st.batcher, batch_failed_atom::value, job.batch_id,
                 make_error(errc::internal, "worker " + st.label + ": " + why));
      return;
    }
  }
  auto& m = *st.spec.model;
  auto t0 = std::chrono::steady_clock::now();
  if (!inject_faults(self, job))
    return;
  started_batch b;
  b.t0 = t0;
  try {
    auto views = gather_batch(m, job.requests);
    b.pending = st.backend->start(views);
  } catch (const std::exception& e) {
    logging::warn({"worker", m.name, 0, {}, st.label}, "batch {} of {} requests failed: {}",
                  job.batch_id, job.requests.size(), e.what());
    self->send(st.batcher, batch_failed_atom::value, job.batch_id,
               make_error(errc::inference_failed, "worker " + st.label + ": " + e.what()));
    return;
  }
  b.t1 = steady_clock::now();
  b.job = std::move(job);
  if (st.waiter) {
    st.waiter->push(std::move(b));
    return;
  }
  // (as a halt-polling guest's vCPU does, it waits awake only where the last wait would have paid:
  // this batch came within linger_us of the previous one's outputs)
  const bool lingers =
    b.job.linger && b.t0 - st.last_done <= std::chrono::microseconds(m.linger_us);
  answer(st, b, st.last_done);
  if (lingers)
    linger(self);
}

/// An exception escaping a handler ends this worker (the supervisor restarts it); its text goes
/// in the exit reason so that the requests it fails say what happened.
caf::error exit_reason_of(caf::scheduled_actor*, std::exception_ptr& eptr) {
  try {
    std::rethrow_exception(eptr);
  } catch (const std::exception& e) {
    return make_error(errc::worker_failed, e.what());
  } catch (...) {
    return make_error(errc::worker_failed, "unknown exception");
  }
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
  self->set_exception_handler(exit_reason_of);
  try {
    load_and_warm_up(st);
  } catch (const std::exception& e) {
    logging::error({"worker", st.spec.model->name, 0, {}, st.label}, "failed to start: {}",
                   e.what());
    self->quit(make_error(errc::worker_failed, st.label + " failed to start: " + e.what()));
    return {[](execute_atom, batch_job&) {}, [](fault_atom, fault_spec&) {}};
  }
  if (st.own) {
    st.own->set_phase(worker_phase::ready);
    report_stop_on_exit(self);
  }
  auto capacity = st.backend->max_inflight();
  if (capacity > 1)
    st.waiter = std::make_unique<completer>(st);
  self->send(batcher, worker_ready_atom::value, caf::actor_cast<caf::actor>(self), st.label,
             capacity);
  return {
    [self](fault_atom, fault_spec& spec) {
      logging::warn({"worker", self->state.spec.model->name, 0, {}, self->state.label},
                    "fault armed: {} for the next {} batch(es), probability {}", spec.kind,
                    spec.count, spec.probability);
      self->state.armed = std::move(spec);
    },
    [self](execute_atom, batch_job& job) { execute(self, job); },
  };
}

} // namespace

worker_actor spawn_worker(caf::actor_system& sys, const worker_spec& spec, batcher_actor batcher,
                          std::shared_ptr<metrics> stats) {
  return sys.spawn<caf::detached>(worker_fn, spec, std::move(batcher), std::move(stats));
}

} // namespace actorserve
