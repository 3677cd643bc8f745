#include "runtime/metrics.hpp"
#include "runtime/autoscale_policy.hpp"
#include "runtime/stage_metrics.hpp"
#include "runtime/tracing.hpp"

#include <chrono>
#include <cstdio>
#include <sstream>

#include <boost/json.hpp>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

namespace actorserve {

namespace {

const std::vector<double> latency_bounds{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                         0.01,    0.025,  0.05,    0.1,    0.25,  0.5,    1,
                                         2.5,     5,      10,     30,     60};

std::vector<double> batch_bounds(uint32_t max_batch_size) {
  std::vector<double> out;
  uint32_t cap = std::max<uint32_t>(max_batch_size, 1);
  for (uint32_t b = 1; b < cap; b *= 2)
    out.push_back(b);
  out.push_back(cap);
  return out;
}

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

ClientMetric with_labels(std::vector<ClientMetric::Label> labels) {
  ClientMetric m;
  m.label = std::move(labels);
  return m;
}

ClientMetric histogram_metric(const atomic_histogram& h, std::vector<ClientMetric::Label> labels) {
  auto m = with_labels(std::move(labels));
  auto snap = h.read();
  m.histogram.sample_count = snap.count;
  m.histogram.sample_sum = snap.sum;
  for (std::size_t i = 0; i < h.bounds().size(); ++i)
    m.histogram.bucket.push_back({snap.cumulative[i], h.bounds()[i]});
  m.histogram.bucket.push_back({snap.cumulative.back(), std::numeric_limits<double>::infinity()});
  return m;
}

/// Adds one sample of a counter or gauge family.
void add_sample(MetricFamily& f, std::vector<ClientMetric::Label> labels, double value) {
  auto m = with_labels(std::move(labels));
  (f.type == MetricType::Counter ? m.counter.value : m.gauge.value) = value;
  f.metric.push_back(std::move(m));
}

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

uint64_t load(const std::atomic<uint64_t>& x) {
  return x.load(std::memory_order_relaxed);
}

} // namespace

atomic_histogram::atomic_histogram(std::vector<double> upper_bounds)
  : bounds_(std::move(upper_bounds)),
    counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i)
    counts_[i].store(0, std::memory_order_relaxed);
}

void atomic_histogram::observe(double value) noexcept {
  auto it = std::lower_bound(bounds_.begin(), bounds_.end(), value);
  counts_[static_cast<std::size_t>(it - bounds_.begin())].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  double old = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(old, old + value, std::memory_order_relaxed)) {
  }
}

atomic_histogram::snapshot atomic_histogram::read() const {
  snapshot s;
  uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  s.count = running; // consistent with the buckets even while observations race the scrape
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

void duration_stat::add(int64_t duration_ns) noexcept {
  count.fetch_add(1, std::memory_order_relaxed);
  ns.fetch_add(static_cast<uint64_t>(std::max<int64_t>(duration_ns, 0)), std::memory_order_relaxed);
}

const char* to_string(instance_state x) {
  switch (x) {
    case instance_state::starting: return "starting";
    case instance_state::ready: return "ready";
    case instance_state::draining: return "draining";
    case instance_state::stopped: return "stopped";
  }
  return "?";
}

const char* to_string(worker_phase x) {
  switch (x) {
    case worker_phase::starting: return "starting";
    case worker_phase::ready: return "ready";
    case worker_phase::restarting: return "restarting";
    case worker_phase::given_up: return "given_up";
    case worker_phase::stopped: return "stopped";
  }
  return "unknown";
}

const char* outcome_name(errc code) {
  return code == errc::none ? "success" : to_string(code);
}

worker_metrics::worker_metrics(std::string n, std::string d, bool own_worker)
  : name(std::move(n)), device(std::move(d)), compute_seconds(latency_bounds), own(own_worker) {
}

model_metrics::model_metrics(const model_config& m, bool local_workers)
  : name(m.name),
    version(m.version),
    response_cache(m.response_cache_bytes > 0),
    pipeline(m.is_pipeline()),
    wait_quantile_level(m.autoscaling.queue_wait_quantile),
    request_seconds(latency_bounds),
    queue_seconds(latency_bounds),
    compute_seconds(latency_bounds),
    batch_rows(batch_bounds(m.max_batch_size)),
    by_batch_size(std::max<uint32_t>(m.max_batch_size, 1) + 1) {
  if (!local_workers)
    return;
  auto slots = m.instance_slots();
  auto initial = m.initial_instances();
  for (std::size_t k = 0; k < slots.size(); ++k) {
    auto& [device, i] = slots[k];
    workers_.push_back(std::make_unique<worker_metrics>(
      m.name + "/" + device + "/" + std::to_string(i), device));
    if (k >= initial) // (an instance autoscaling may start later)
      workers_.back()->set_phase(worker_phase::stopped);
  }
}

worker_metrics* model_metrics::find_locked(const std::string& worker_name) const {
  for (auto& w : workers_)
    if (w->name == worker_name)
      return w.get();
  return nullptr;
}

worker_metrics* model_metrics::worker(const std::string& worker_name) const {
  std::lock_guard<std::mutex> guard{workers_mutex_};
  return find_locked(worker_name);
}

worker_metrics* model_metrics::add_worker(const std::string& worker_name, const std::string& device) {
  std::lock_guard<std::mutex> guard{workers_mutex_};
  if (auto* w = find_locked(worker_name))
    return w;
  workers_.push_back(std::make_unique<worker_metrics>(worker_name, device, false));
  return workers_.back().get();
}

void model_metrics::for_each_worker(const std::function<void(const worker_metrics&)>& f) const {
  std::lock_guard<std::mutex> guard{workers_mutex_};
  for (auto& w : workers_)
    f(*w);
}

void model_metrics::count_request(errc outcome) noexcept {
  requests[static_cast<std::size_t>(outcome)].fetch_add(1, std::memory_order_relaxed);
}

metrics::metrics(const deployment_config& cfg)
  : https_(cfg.server.http.tls.enabled()), tracing_(cfg.server.tracing.enabled) {
  for (auto& m : cfg.models) {
    models_.emplace(m.name, std::make_unique<model_metrics>(m, cfg.server.cluster.role != cluster_role::front));
    order_.push_back(m.name);
  }
  for (auto& q : cfg.server.queues) {
    queues_.push_back(std::make_unique<queue_metrics>());
    queues_.back()->name = q.name;
  }
}

queue_metrics* metrics::queue(const std::string& name) {
  for (auto& q : queues_)
    if (q->name == name)
      return q.get();
  return nullptr;
}

model_metrics* metrics::model(const std::string& name) {
  auto it = models_.find(name);
  return it == models_.end() ? nullptr : it->second.get();
}

void metrics::count_http_response(unsigned status) noexcept {
  if (status < http_responses_.size())
    http_responses_[status].fetch_add(1, std::memory_order_relaxed);
}

void metrics::count_grpc_response(unsigned code) noexcept {
  if (code < grpc_responses_.size())
    grpc_responses_[code].fetch_add(1, std::memory_order_relaxed);
}

namespace {

/// Every metric family the node exposes, in the order of the exposition.
enum class fam : std::size_t {
  requests, latency, queue, compute, rows, depth, in_flight, batches, state, restarts, retries,
  crash_loop, give_ups, breakers, cache_hits, cache_misses, cache_bytes, http, grpc, tls,
  tls_reloads, bodies, gpu_util, gpu_used, gpu_total, q_read, q_claimed, q_given_up, q_answers,
  q_in_flight, q_errors, q_up, stage_seconds, stage_bytes, stage_in_flight, stage_failures,
  instances, desired, decisions, ongoing, wait_quantile, misses, spans, span_queue,
  span_export_failures, count
};

struct family_spec {
  fam id;
  const char* name;
  MetricType type;
  const char* help;
};

constexpr auto C = MetricType::Counter;
constexpr auto G = MetricType::Gauge;
constexpr auto H = MetricType::Histogram;

// (As Envoy declares its stats: one line each, one place to read them all.)
const family_spec family_specs[] = {
  {fam::requests, "actorserve_requests_total", C,
   "Inference requests answered, by model and outcome"},
  {fam::latency, "actorserve_request_duration_seconds", H,
   "End-to-end inference latency inside the server (body received to response ready)"},
  {fam::queue, "actorserve_queue_duration_seconds", H,
   "Time requests waited in the batcher's queue"},
  {fam::compute, "actorserve_compute_duration_seconds", H, "Time a worker took for one batch"},
  {fam::rows, "actorserve_batch_size", H, "Rows per executed batch"},
  {fam::depth, "actorserve_queue_depth", G, "Requests waiting in the batcher's queue"},
  {fam::in_flight, "actorserve_requests_in_flight", G,
   "Requests accepted over HTTP and not yet answered"},
  {fam::batches, "actorserve_batches_total", C, "Batches executed, by worker"},
  {fam::state, "actorserve_worker_state", G,
   "1 for the state each worker is in (starting, ready, restarting, given_up, stopped), else 0"},
  {fam::restarts, "actorserve_worker_restarts_total", C, "Worker restarts by the supervisor"},
  {fam::retries, "actorserve_retries_total", C,
   "Requests re-dispatched to another worker after a worker-caused failure"},
  {fam::crash_loop, "actorserve_model_crash_loop", G,
   "1 while the model waits out its crash-loop back-off (its supervisors gave up; it is started "
   "again after server.supervision.model_cooldown_ms), else 0"},
  {fam::give_ups, "actorserve_model_give_ups_total", C,
   "Times the model's supervisors gave up on it (it stopped)"},
  {fam::breakers, "actorserve_breaker_transitions_total", C,
   "Circuit breaker transitions of each worker, by the state entered"},
  {fam::cache_hits, "actorserve_cache_hits_total", C,
   "Requests answered from the model's response cache"},
  {fam::cache_misses, "actorserve_cache_misses_total", C,
   "Requests looked up in the model's response cache and not found"},
  {fam::cache_bytes, "actorserve_cache_bytes", G, "Bytes the model's response cache holds"},
  {fam::http, "actorserve_http_responses_total", C, "HTTP responses by status code"},
  {fam::grpc, "actorserve_grpc_responses_total", C,
   "gRPC calls answered, by status code (0 OK, 3 INVALID_ARGUMENT, 4 DEADLINE_EXCEEDED, 5 "
   "NOT_FOUND, 8 RESOURCE_EXHAUSTED, 12 UNIMPLEMENTED, 13 INTERNAL, 14 UNAVAILABLE, ...)"},
  {fam::tls, "actorserve_http_tls_handshake_failures_total", C,
   "HTTPS connections whose TLS handshake failed (plaintext, an old protocol, a client "
   "certificate missing or not signed by the client CA)"},
  {fam::tls_reloads, "actorserve_http_tls_reloads_total", C,
   "HTTPS certificate files found changed: loaded for new connections, or failed to load (the "
   "previous ones kept)"},
  {fam::bodies, "actorserve_http_request_body_bytes", G,
   "Request bodies held (read or being read, not yet answered)"},
  {fam::gpu_util, "actorserve_gpu_utilization_ratio", G,
   "GPU busy fraction over NVML's last sample period"},
  {fam::gpu_used, "actorserve_gpu_memory_used_bytes", G, "GPU memory in use (NVML)"},
  {fam::gpu_total, "actorserve_gpu_memory_total_bytes", G, "GPU memory in all (NVML)"},
  {fam::q_read, "actorserve_queue_entries_read_total", C,
   "Entries of an event queue delivered to this node"},
  {fam::q_claimed, "actorserve_queue_entries_claimed_total", C,
   "Entries taken over from a consumer that stopped answering them"},
  {fam::q_given_up, "actorserve_queue_entries_given_up_total", C,
   "Entries delivered max_deliveries times: answered without running"},
  {fam::q_answers, "actorserve_queue_answers_total", C,
   "Answers written to reply streams, by status code"},
  {fam::q_in_flight, "actorserve_queue_entries_in_flight", G, "Entries read and not yet answered"},
  {fam::q_errors, "actorserve_queue_redis_errors_total", C,
   "Failed connections and commands to an event queue's Redis"},
  {fam::q_up, "actorserve_queue_redis_connections", G,
   "Connections to an event queue's Redis that are up (a reader and a writer)"},
  {fam::stage_seconds, "actorserve_stage_item_duration_seconds", H,
   "Time a pipeline stage took per item (a download, a decode and preprocess), by stage step"},
  {fam::stage_bytes, "actorserve_stage_bytes_total", C, "Bytes a fetch stage downloaded"},
  {fam::stage_in_flight, "actorserve_stage_items_in_flight", G,
   "Items a fetch stage is downloading (or waiting to: connections are bounded)"},
  {fam::stage_failures, "actorserve_stage_failures_total", C,
   "Items a pipeline stage failed, by reason (forbidden, upstream_failed, deadline_exceeded, "
   "payload_too_large, invalid_input, cancelled, ...)"},
  {fam::instances, "actorserve_instances", G,
   "The model's worker instances on this node by state (starting, ready, draining, stopped)"},
  {fam::desired, "actorserve_desired_instances", G,
   "The instances the model's autoscaler wants (models[].autoscaling); on a cluster front, what "
   "worker nodes should hold in all"},
  {fam::decisions, "actorserve_autoscaler_decisions_total", C,
   "Changes of the wanted instances, by direction (up, down) and reason (ongoing_requests, "
   "queue_wait, predicted_misses, cold_start, bounds)"},
  {fam::ongoing, "actorserve_ongoing_requests", G,
   "Requests queued or running, averaged over autoscaling.look_back_ms, as the autoscaler sees "
   "them"},
  {fam::wait_quantile, "actorserve_queue_wait_quantile_seconds", G,
   "The autoscaler's queue-wait quantile (autoscaling.queue_wait_quantile) over its look-back "
   "window, requests still queued included"},
  {fam::misses, "actorserve_predicted_deadline_misses", G,
   "Queued requests that will miss their deadlines at the pace the ready instances keep"},
  {fam::spans, "actorserve_trace_spans_total", C,
   "Spans recorded for export (server.tracing), by outcome: exported to the collector, or "
   "dropped because the queue was full or the export failed"},
  {fam::span_queue, "actorserve_trace_span_queue", G, "Spans waiting for their export"},
  {fam::span_export_failures, "actorserve_trace_export_failures_total", C,
   "Export calls to the collector that failed (their spans dropped)"},
};
static_assert(std::size(family_specs) == static_cast<std::size_t>(fam::count));

using labels = std::vector<ClientMetric::Label>;

/// The families of one scrape, filled sample by sample; those left empty are not written.
class exposition {
public:
  exposition() {
    for (std::size_t i = 0; i < std::size(family_specs); ++i) {
      auto& spec = family_specs[i]; // (placed by its id: the table's order cannot misplace it)
      families_[static_cast<std::size_t>(spec.id)] = family(spec.name, spec.help, spec.type);
    }
  }

  void add(fam f, labels l, double value) { add_sample(at(f), std::move(l), value); }

  void add(fam f, const atomic_histogram& h, labels l) {
    at(f).metric.push_back(histogram_metric(h, std::move(l)));
  }

  /// One sample per nonzero count of `by_code`, labelled with its code.
  template <std::size_t N>
  void add_codes(fam f, const std::array<std::atomic<uint64_t>, N>& by_code, const labels& l) {
    for (std::size_t code = 0; code < N; ++code)
      if (auto n = load(by_code[code])) {
        auto with_code = l;
        with_code.push_back({"code", std::to_string(code)});
        add(f, std::move(with_code), static_cast<double>(n));
      }
  }

  std::string text() {
    std::vector<MetricFamily> out;
    for (auto& f : families_)
      if (!f.metric.empty())
        out.push_back(std::move(f));
    return prometheus::TextSerializer{}.Serialize(out);
  }

private:
  MetricFamily& at(fam f) { return families_[static_cast<std::size_t>(f)]; }

  std::array<MetricFamily, static_cast<std::size_t>(fam::count)> families_;
};

void add_worker(exposition& e, const std::string& model, const worker_metrics& w) {
  labels l{{"device", w.device}, {"model", model}, {"worker", w.name}};
  e.add(fam::compute, w.compute_seconds, l);
  e.add(fam::batches, l, static_cast<double>(load(w.batches)));
  e.add(fam::restarts, l, static_cast<double>(load(w.restarts)));
  const char* breaker_states[] = {"closed", "open", "half_open"};
  for (std::size_t k = 0; k < 3; ++k) {
    auto s = l;
    s.push_back({"to", breaker_states[k]});
    e.add(fam::breakers, std::move(s), static_cast<double>(load(w.breaker_transitions[k])));
  }
  auto phase = w.phase.load(std::memory_order_relaxed);
  for (int p = 0; p <= static_cast<int>(worker_phase::stopped); ++p) {
    auto s = l;
    s.push_back({"state", to_string(static_cast<worker_phase>(p))});
    e.add(fam::state, std::move(s), p == phase ? 1 : 0);
  }
}

void add_scaling(exposition& e, const model_metrics& m, const labels& l) {
  if (m.pipeline)
    return;
  for (std::size_t k = 0; k < m.instances.size(); ++k)
    e.add(fam::instances, {{"model", m.name}, {"state", to_string(static_cast<instance_state>(k))}},
          static_cast<double>(m.instances[k].load(std::memory_order_relaxed)));
  auto desired = m.desired_instances.load(std::memory_order_relaxed);
  if (desired < 0)
    return;
  e.add(fam::desired, l, static_cast<double>(desired));
  e.add(fam::ongoing, l, m.ongoing_requests.load(std::memory_order_relaxed));
  char q[32];
  std::snprintf(q, sizeof q, "%g", m.wait_quantile_level);
  e.add(fam::wait_quantile, {{"model", m.name}, {"quantile", q}},
        m.queue_wait_quantile.load(std::memory_order_relaxed));
  e.add(fam::misses, l, static_cast<double>(m.predicted_misses.load(std::memory_order_relaxed)));
  for (std::size_t dir = 0; dir < 2; ++dir)
    for (std::size_t r = 1; r < static_cast<std::size_t>(scale_reason::count); ++r)
      e.add(fam::decisions, {{"direction", dir == 0 ? "up" : "down"}, {"model", m.name},
                             {"reason", to_string(static_cast<scale_reason>(r))}},
            static_cast<double>(load(m.scale_decisions[dir][r])));
}

void add_model(exposition& e, const model_metrics& m) {
  for (std::size_t i = 0; i < outcome_count; ++i)
    if (static_cast<errc>(i) != errc::invalid_config) // (never the outcome of a request)
      e.add(fam::requests, {{"model", m.name}, {"outcome", outcome_name(static_cast<errc>(i))}},
            static_cast<double>(load(m.requests[i])));
  const labels l{{"model", m.name}};
  e.add(fam::latency, m.request_seconds, l);
  e.add(fam::queue, m.queue_seconds, l);
  e.add(fam::rows, m.batch_rows, l);
  e.add(fam::depth, l, m.queue_depth.load(std::memory_order_relaxed));
  e.add(fam::in_flight, l, m.in_flight.load(std::memory_order_relaxed));
  e.add(fam::retries, l, load(m.retries));
  e.add(fam::crash_loop, l, m.crash_loop.load(std::memory_order_relaxed));
  e.add(fam::give_ups, l, load(m.give_ups));
  add_scaling(e, m, l);
  if (m.response_cache) {
    e.add(fam::cache_hits, l, load(m.cache_hit.count));
    e.add(fam::cache_misses, l, load(m.cache_miss.count));
    e.add(fam::cache_bytes, l, load(m.cache_bytes));
  }
  m.for_each_worker([&](const worker_metrics& w) { add_worker(e, m.name, w); });
}

void add_gpus(exposition& e, gpu_monitor& gpu) {
  for (auto& g : gpu.sample()) {
    labels l{{"device", "cuda:" + std::to_string(g.index)}, {"name", g.name}};
    e.add(fam::gpu_util, l, g.utilization);
    e.add(fam::gpu_used, l, static_cast<double>(g.memory_used));
    e.add(fam::gpu_total, std::move(l), static_cast<double>(g.memory_total));
  }
}

void add_stage(exposition& e, const stage_metrics& s) {
  const labels l{{"kind", s.kind}, {"stage", s.name}};
  e.add(fam::stage_seconds, s.seconds, l);
  if (s.kind == "fetch") {
    e.add(fam::stage_bytes, l, static_cast<double>(load(s.bytes)));
    e.add(fam::stage_in_flight, l, static_cast<double>(s.in_flight.load(std::memory_order_relaxed)));
  }
  for (std::size_t i = 1; i < s.failures.size(); ++i)
    if (auto n = load(s.failures[i])) {
      auto with = l;
      with.push_back({"reason", to_string(static_cast<errc>(i))});
      e.add(fam::stage_failures, std::move(with), static_cast<double>(n));
    }
}

void add_queue(exposition& e, const queue_metrics& q) {
  const labels l{{"queue", q.name}};
  e.add(fam::q_read, l, load(q.entries_read));
  e.add(fam::q_claimed, l, load(q.entries_claimed));
  e.add(fam::q_given_up, l, load(q.entries_given_up));
  e.add(fam::q_errors, l, load(q.redis_errors));
  e.add(fam::q_in_flight, l, q.in_flight.load(std::memory_order_relaxed));
  e.add(fam::q_up, l, q.redis_up.load(std::memory_order_relaxed));
  e.add_codes(fam::q_answers, q.answers, l);
}

} // namespace

std::string metrics::prometheus_text() const {
  exposition e;
  for (auto& name : order_)
    add_model(e, *models_.at(name));
  e.add_codes(fam::http, http_responses_, {});
  e.add_codes(fam::grpc, grpc_responses_, {});
  if (https_) {
    e.add(fam::tls, {}, static_cast<double>(load(tls_handshake_failures_)));
    e.add(fam::tls_reloads, {{"outcome", "loaded"}}, static_cast<double>(load(tls_reloads_[0])));
    e.add(fam::tls_reloads, {{"outcome", "failed"}}, static_cast<double>(load(tls_reloads_[1])));
  }
  e.add(fam::bodies, {}, static_cast<double>(load(http_body_bytes)));
  if (tracing_) {
    auto& t = tracing::stats();
    e.add(fam::spans, {{"outcome", "exported"}}, static_cast<double>(load(t.exported)));
    e.add(fam::spans, {{"outcome", "dropped_queue_full"}},
          static_cast<double>(load(t.dropped_queue_full)));
    e.add(fam::spans, {{"outcome", "dropped_export_failed"}},
          static_cast<double>(load(t.dropped_export_failed)));
    e.add(fam::span_queue, {}, static_cast<double>(load(t.queued)));
    e.add(fam::span_export_failures, {}, static_cast<double>(load(t.export_failures)));
  }
  if (gpu_)
    add_gpus(e, *gpu_);
  for (auto& q : queues_)
    add_queue(e, *q);
  stage_metrics::for_each([&](const stage_metrics& s) { add_stage(e, s); });
  return e.text();
}

std::string metrics::statistics_json(const std::string& model) const {
  namespace json = boost::json;
  auto stat = [](const duration_stat& d) {
    return json::object{{"count", load(d.count)}, {"ns", load(d.ns)}};
  };
  json::array all;
  for (auto& name : order_) {
    if (!model.empty() && name != model)
      continue;
    auto& m = *models_.at(name);
    json::array batch_stats;
    for (std::size_t rows = 1; rows < m.by_batch_size.size(); ++rows) {
      auto& b = m.by_batch_size[rows];
      if (load(b.compute_infer.count) == 0)
        continue;
      batch_stats.push_back(json::object{{"batch_size", rows},
                                         {"compute_input", stat(b.compute_input)},
                                         {"compute_infer", stat(b.compute_infer)},
                                         {"compute_output", stat(b.compute_output)}});
    }
    all.push_back(json::object{
      {"name", m.name},
      {"version", m.version},
      {"last_inference", load(m.last_inference_ms)},
      {"inference_count", load(m.inference_count)},
      {"execution_count", load(m.execution_count)},
      {"inference_stats", json::object{{"success", stat(m.success)},
                                       {"fail", stat(m.fail)},
                                       {"queue", stat(m.queue)},
                                       {"compute_input", stat(m.compute_input)},
                                       {"compute_infer", stat(m.compute_infer)},
                                       {"compute_output", stat(m.compute_output)},
                                       {"cache_hit", stat(m.cache_hit)},
                                       {"cache_miss", stat(m.cache_miss)}}},
      {"batch_stats", std::move(batch_stats)}});
  }
  return json::serialize(json::object{{"model_stats", std::move(all)}});
}

} // namespace actorserve
