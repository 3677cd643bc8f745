#include "runtime/metrics.hpp"

#include <chrono>
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
    request_seconds(latency_bounds),
    queue_seconds(latency_bounds),
    compute_seconds(latency_bounds),
    batch_rows(batch_bounds(m.max_batch_size)),
    by_batch_size(std::max<uint32_t>(m.max_batch_size, 1) + 1) {
  if (local_workers)
    for (auto& device : m.devices)
      for (uint32_t i = 0; i < m.instances; ++i)
        workers_.push_back(std::make_unique<worker_metrics>(
          m.name + "/" + device + "/" + std::to_string(i), device));
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

metrics::metrics(const deployment_config& cfg) : https_(cfg.server.http.tls.enabled()) {
  for (auto& m : cfg.models) {
    models_.emplace(m.name, std::make_unique<model_metrics>(m, cfg.server.cluster.role != "front"));
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

std::string metrics::prometheus_text() const {
  std::vector<MetricFamily> out;
  auto requests = family("actorserve_requests_total",
                         "Inference requests answered, by model and outcome", MetricType::Counter);
  auto latency = family("actorserve_request_duration_seconds",
                        "End-to-end inference latency inside the server (body received to response "
                        "ready)", MetricType::Histogram);
  auto queue = family("actorserve_queue_duration_seconds",
                      "Time requests waited in the batcher's queue", MetricType::Histogram);
  auto compute = family("actorserve_compute_duration_seconds",
                        "Time a worker took for one batch", MetricType::Histogram);
  auto rows = family("actorserve_batch_size", "Rows per executed batch", MetricType::Histogram);
  auto depth = family("actorserve_queue_depth", "Requests waiting in the batcher's queue",
                      MetricType::Gauge);
  auto in_flight = family("actorserve_requests_in_flight",
                          "Requests accepted over HTTP and not yet answered", MetricType::Gauge);
  auto batches = family("actorserve_batches_total", "Batches executed, by worker",
                        MetricType::Counter);
  auto state = family("actorserve_worker_state",
                      "1 for the state each worker is in (starting, ready, restarting, given_up, "
                      "stopped), else 0", MetricType::Gauge);
  auto restarts = family("actorserve_worker_restarts_total", "Worker restarts by the supervisor",
                         MetricType::Counter);
  auto retries = family("actorserve_retries_total",
                        "Requests re-dispatched to another worker after a worker-caused failure",
                        MetricType::Counter);
  auto breakers = family("actorserve_breaker_transitions_total",
                         "Circuit breaker transitions of each worker, by the state entered",
                         MetricType::Counter);
  auto crash_loop = family("actorserve_model_crash_loop",
                           "1 while the model waits out its crash-loop back-off (its supervisors "
                           "gave up; it is started again after server.supervision.model_cooldown_ms),"
                           " else 0", MetricType::Gauge);
  auto give_ups = family("actorserve_model_give_ups_total",
                         "Times the model's supervisors gave up on it (it stopped)",
                         MetricType::Counter);
  auto cache_hits = family("actorserve_cache_hits_total",
                           "Requests answered from the model's response cache", MetricType::Counter);
  auto cache_misses = family("actorserve_cache_misses_total",
                             "Requests looked up in the model's response cache and not found",
                             MetricType::Counter);
  auto cache_bytes = family("actorserve_cache_bytes", "Bytes the model's response cache holds",
                            MetricType::Gauge);
  for (auto& name : order_) {
    auto& m = *models_.at(name);
    for (std::size_t i = 0; i < outcome_count; ++i) {
      if (static_cast<errc>(i) == errc::invalid_config)
        continue; // never the outcome of a request
      auto c = with_labels({{"model", m.name}, {"outcome", outcome_name(static_cast<errc>(i))}});
      c.counter.value = static_cast<double>(load(m.requests[i]));
      requests.metric.push_back(std::move(c));
    }
    latency.metric.push_back(histogram_metric(m.request_seconds, {{"model", m.name}}));
    queue.metric.push_back(histogram_metric(m.queue_seconds, {{"model", m.name}}));
    rows.metric.push_back(histogram_metric(m.batch_rows, {{"model", m.name}}));
    add_sample(depth, {{"model", m.name}}, m.queue_depth.load(std::memory_order_relaxed));
    add_sample(in_flight, {{"model", m.name}}, m.in_flight.load(std::memory_order_relaxed));
    add_sample(retries, {{"model", m.name}}, load(m.retries));
    add_sample(crash_loop, {{"model", m.name}}, m.crash_loop.load(std::memory_order_relaxed));
    add_sample(give_ups, {{"model", m.name}}, load(m.give_ups));
    if (m.response_cache) {
      add_sample(cache_hits, {{"model", m.name}}, load(m.cache_hit.count));
      add_sample(cache_misses, {{"model", m.name}}, load(m.cache_miss.count));
      add_sample(cache_bytes, {{"model", m.name}}, load(m.cache_bytes));
    }
    m.for_each_worker([&](const worker_metrics& w) {
      std::vector<ClientMetric::Label> labels{{"device", w.device}, {"model", m.name},
                                              {"worker", w.name}};
      compute.metric.push_back(histogram_metric(w.compute_seconds, labels));
      auto b = with_labels(labels);
      b.counter.value = static_cast<double>(load(w.batches));
      batches.metric.push_back(std::move(b));
      auto r = with_labels(labels);
      r.counter.value = static_cast<double>(load(w.restarts));
      restarts.metric.push_back(std::move(r));
      const char* states[] = {"closed", "open", "half_open"};
      for (std::size_t k = 0; k < 3; ++k) {
        auto s = labels;
        s.push_back({"to", states[k]});
        auto c = with_labels(std::move(s));
        c.counter.value = static_cast<double>(load(w.breaker_transitions[k]));
        breakers.metric.push_back(std::move(c));
      }
      auto phase = w.phase.load(std::memory_order_relaxed);
      for (int p = 0; p <= static_cast<int>(worker_phase::stopped); ++p) {
        auto s = labels;
        s.push_back({"state", to_string(static_cast<worker_phase>(p))});
        auto g = with_labels(std::move(s));
        g.gauge.value = p == phase ? 1 : 0;
        state.metric.push_back(std::move(g));
      }
    });
  }
  auto http = family("actorserve_http_responses_total", "HTTP responses by status code",
                     MetricType::Counter);
  for (std::size_t code = 0; code < http_responses_.size(); ++code)
    if (auto n = load(http_responses_[code])) {
      auto c = with_labels({{"code", std::to_string(code)}});
      c.counter.value = static_cast<double>(n);
      http.metric.push_back(std::move(c));
    }
  auto grpc = family("actorserve_grpc_responses_total",
                     "gRPC calls answered, by status code (0 OK, 3 INVALID_ARGUMENT, 4 "
                     "DEADLINE_EXCEEDED, 5 NOT_FOUND, 8 RESOURCE_EXHAUSTED, 12 UNIMPLEMENTED, 13 "
                     "INTERNAL, 14 UNAVAILABLE, ...)", MetricType::Counter);
  for (std::size_t code = 0; code < grpc_responses_.size(); ++code)
    if (auto n = load(grpc_responses_[code])) {
      auto c = with_labels({{"code", std::to_string(code)}});
      c.counter.value = static_cast<double>(n);
      grpc.metric.push_back(std::move(c));
    }
  auto tls = family("actorserve_http_tls_handshake_failures_total",
                    "HTTPS connections whose TLS handshake failed (plaintext, an old protocol, a "
                    "client certificate missing or not signed by the client CA)",
                    MetricType::Counter);
  auto tls_reloads = family("actorserve_http_tls_reloads_total",
                            "HTTPS certificate files found changed: loaded for new connections, "
                            "or failed to load (the previous ones kept)", MetricType::Counter);
  if (https_) {
    auto c = with_labels({});
    c.counter.value = static_cast<double>(load(tls_handshake_failures_));
    tls.metric.push_back(std::move(c));
    for (int i = 0; i < 2; ++i) {
      auto r = with_labels({{"outcome", i == 0 ? "loaded" : "failed"}});
      r.counter.value = static_cast<double>(load(tls_reloads_[i]));
      tls_reloads.metric.push_back(std::move(r));
    }
  }
  auto bodies = family("actorserve_http_request_body_bytes",
                       "Request bodies held (read or being read, not yet answered)",
                       MetricType::Gauge);
  auto b = with_labels({});
  b.gauge.value = static_cast<double>(load(http_body_bytes));
  bodies.metric.push_back(std::move(b));
  auto gpu_util = family("actorserve_gpu_utilization_ratio",
                         "GPU busy fraction over NVML's last sample period", MetricType::Gauge);
  auto gpu_used = family("actorserve_gpu_memory_used_bytes", "GPU memory in use (NVML)",
                         MetricType::Gauge);
  auto gpu_total = family("actorserve_gpu_memory_total_bytes", "GPU memory in all (NVML)",
                          MetricType::Gauge);
  if (gpu_)
    for (auto& g : gpu_->sample()) {
      std::vector<ClientMetric::Label> labels{{"device", "cuda:" + std::to_string(g.index)},
                                              {"name", g.name}};
      auto u = with_labels(labels);
      u.gauge.value = g.utilization;
      gpu_util.metric.push_back(std::move(u));
      auto used = with_labels(labels);
      used.gauge.value = static_cast<double>(g.memory_used);
      gpu_used.metric.push_back(std::move(used));
      auto total = with_labels(labels);
      total.gauge.value = static_cast<double>(g.memory_total);
      gpu_total.metric.push_back(std::move(total));
    }
  auto q_read = family("actorserve_queue_entries_read_total",
                       "Entries of an event queue delivered to this node", MetricType::Counter);
  auto q_claimed = family("actorserve_queue_entries_claimed_total",
                          "Entries taken over from a consumer that stopped answering them",
                          MetricType::Counter);
  auto q_given_up = family("actorserve_queue_entries_given_up_total",
                           "Entries delivered max_deliveries times: answered without running",
                           MetricType::Counter);
  auto q_answers = family("actorserve_queue_answers_total",
                          "Answers written to reply streams, by status code", MetricType::Counter);
  auto q_in_flight = family("actorserve_queue_entries_in_flight",
                            "Entries read and not yet answered", MetricType::Gauge);
  auto q_errors = family("actorserve_queue_redis_errors_total",
                         "Failed connections and commands to an event queue's Redis",
                         MetricType::Counter);
  auto q_up = family("actorserve_queue_redis_connections",
                     "Connections to an event queue's Redis that are up (a reader and a writer)",
                     MetricType::Gauge);
  for (auto& q : queues_) {
    auto counter = [&](MetricFamily& f, uint64_t v) {
      auto c = with_labels({{"queue", q->name}});
      c.counter.value = static_cast<double>(v);
      f.metric.push_back(std::move(c));
    };
    auto gauge = [&](MetricFamily& f, int64_t v) {
      auto g = with_labels({{"queue", q->name}});
      g.gauge.value = static_cast<double>(v);
      f.metric.push_back(std::move(g));
    };
    counter(q_read, load(q->entries_read));
    counter(q_claimed, load(q->entries_claimed));
    counter(q_given_up, load(q->entries_given_up));
    counter(q_errors, load(q->redis_errors));
    gauge(q_in_flight, q->in_flight.load(std::memory_order_relaxed));
    gauge(q_up, q->redis_up.load(std::memory_order_relaxed));
    for (std::size_t code = 0; code < q->answers.size(); ++code)
      if (auto n = load(q->answers[code])) {
        auto c = with_labels({{"queue", q->name}, {"code", std::to_string(code)}});
        c.counter.value = static_cast<double>(n);
        q_answers.metric.push_back(std::move(c));
      }
  }
  for (auto* f : {&requests, &latency, &queue, &compute, &rows, &depth, &in_flight, &batches,
                  &state, &restarts, &retries, &crash_loop, &give_ups, &breakers, &cache_hits, &cache_misses,
                  &cache_bytes, &http, &grpc, &tls, &tls_reloads, &bodies, &gpu_util, &gpu_used,
                  &gpu_total, &q_read, &q_claimed, &q_given_up, &q_answers, &q_in_flight, &q_errors, &q_up})
    if (!f->metric.empty())
      out.push_back(std::move(*f));
  return prometheus::TextSerializer{}.Serialize(out);
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
