// Metrics of the serving path: relaxed atomics only on the hot path (no lock that would serialize
// request handling), preallocated per model and per local worker from the deployment (a cluster's
// remote workers are added as they join), exposed in the
// Prometheus text format through prometheus-cpp's serializer, and as Triton-style statistics JSON.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/config.hpp"
#include "runtime/error.hpp"
#include "runtime/gpu_monitor.hpp"

namespace actorserve {

/// A histogram whose observe() is a handful of relaxed atomic operations.
class atomic_histogram {
public:
  explicit atomic_histogram(std::vector<double> upper_bounds);
  void observe(double value) noexcept;

  struct snapshot {
    std::vector<uint64_t> cumulative; // one per bound, then +Inf
    uint64_t count = 0;
    double sum = 0;
  };
  snapshot read() const;
  const std::vector<double>& bounds() const { return bounds_; }

private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_; // bounds_.size() + 1
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

/// A count and a cumulative duration, as Triton's statistics report them.
struct duration_stat {
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> ns{0};
  void add(int64_t duration_ns) noexcept;
};

enum class worker_phase : int { starting = 0, ready, restarting, given_up, stopped };
const char* to_string(worker_phase x);

struct worker_metrics {
  std::string name;   // "model/device/instance"
  std::string device;
  std::atomic<int> phase{static_cast<int>(worker_phase::starting)};
  std::atomic<uint64_t> restarts{0};
  std::atomic<uint64_t> batches{0};
  std::array<std::atomic<uint64_t>, 3> breaker_transitions{}; // into closed, open, half_open
  atomic_histogram compute_seconds;
  // One of this node's own workers (from the deployment), whose state its supervisor keeps;
  // false for a worker of another node of a cluster, whose state the batcher keeps.
  const bool own;
  worker_metrics(std::string n, std::string d, bool own_worker = true);
  void set_phase(worker_phase p) noexcept { phase.store(static_cast<int>(p), std::memory_order_relaxed); }
};

/// Outcomes a request can end with: success, or the error code it was answered with.
constexpr std::size_t outcome_count = static_cast<std::size_t>(last_errc) + 1;
const char* outcome_name(errc code); // errc::none -> "success"

struct batch_size_stat {
  duration_stat compute_input, compute_infer, compute_output;
};

/// A worker instance as its batcher sees it (actorserve_instances{state}).
enum class instance_state { starting, ready, draining, stopped };
const char* to_string(instance_state x);

struct model_metrics {
  std::string name;
  std::string version;
  bool response_cache = false; // models[].response_cache_bytes > 0: its cache series exist
  bool pipeline = false;       // a pipeline: no instances of its own (no instance series)
  double wait_quantile_level;  // autoscaling.queue_wait_quantile (the label of its series)
  std::array<std::atomic<uint64_t>, outcome_count> requests{}; // by outcome
  atomic_histogram request_seconds; // HTTP body received -> response ready
  atomic_histogram queue_seconds;   // admitted by the batcher -> dispatched
  atomic_histogram compute_seconds; // per batch, on the worker
  atomic_histogram batch_rows;      // rows per executed batch
  std::atomic<int64_t> queue_depth{0};
  std::atomic<int64_t> in_flight{0}; // accepted over HTTP, not yet answered
  std::atomic<uint64_t> retries{0};  // re-dispatches after worker-caused failures
  std::atomic<int64_t> crash_loop{0}; // 1 while it waits out its crash-loop back-off
  std::atomic<uint64_t> give_ups{0};  // its supervisors gave up on it (it stopped)
  // Its worker instances as its batcher counts them, by instance_state; and autoscaling's
  // figures and decisions (desired_instances -1: no autoscaling).
  std::array<std::atomic<int64_t>, 4> instances{};
  std::atomic<int64_t> desired_instances{-1};
  std::atomic<double> ongoing_requests{0};   // averaged over autoscaling.look_back_ms
  std::atomic<double> queue_wait_quantile{0}; // seconds, at autoscaling.queue_wait_quantile
  std::atomic<int64_t> predicted_misses{0};
  std::array<std::array<std::atomic<uint64_t>, 8>, 2> scale_decisions{}; // [up, down][reason]
  // Triton-style statistics
  duration_stat success, fail, queue, compute_input, compute_infer, compute_output;
  duration_stat cache_hit, cache_miss; // response cache: lookup (and on a miss, insert) time
  std::atomic<uint64_t> cache_bytes{0}; // what the model's response cache holds
  std::atomic<uint64_t> inference_count{0}; // rows
  std::atomic<uint64_t> execution_count{0}; // batches
  std::atomic<uint64_t> last_inference_ms{0}; // wall clock, ms since the epoch
  std::vector<batch_size_stat> by_batch_size; // index: rows (0 unused)

  /// `local_workers`: this node runs the model's workers (not a cluster front), so their
  /// series exist, as "starting", from the start.
  model_metrics(const model_config& m, bool local_workers = true);
  /// nullptr for a worker not known (yet).
  worker_metrics* worker(const std::string& worker_name) const;
  /// The worker's metrics, made when it is first seen (a worker of another node of a cluster,
  /// known once it joins). Never removed: its counters stay and its state says when it left.
  worker_metrics* add_worker(const std::string& worker_name, const std::string& device);
  /// Calls `f` for each worker, in the order they became known.
  void for_each_worker(const std::function<void(const worker_metrics&)>& f) const;
  void count_request(errc outcome) noexcept;

private:
  worker_metrics* find_locked(const std::string& worker_name) const; // with workers_mutex_ held

  mutable std::mutex workers_mutex_; // guards the list only: a worker's metrics are atomics
  std::vector<std::unique_ptr<worker_metrics>> workers_;
};

/// One event queue's ingress (server.queues[]): entries read and answered, and its Redis link.
struct queue_metrics {
  std::string name;
  std::atomic<uint64_t> entries_read{0};     // delivered to this node (new, own history, claimed)
  std::atomic<uint64_t> entries_claimed{0};  // taken over from a consumer that stopped answering
  std::atomic<uint64_t> entries_given_up{0}; // delivered max_deliveries times: answered, not run
  std::array<std::atomic<uint64_t>, 600> answers{}; // answers written, by status code
  std::atomic<int64_t> in_flight{0};         // read, answer not yet written
  std::atomic<uint64_t> redis_errors{0};     // failed connections and commands
  std::atomic<int64_t> redis_up{0};          // connections to Redis that are up (0..2)
};

class metrics {
public:
  explicit metrics(const deployment_config& cfg);

  /// nullptr for a model the deployment does not have. The map is fixed after construction,
  /// so lookups need no lock.
  model_metrics* model(const std::string& name);

  /// nullptr for a queue the deployment does not have (fixed after construction, like models).
  queue_metrics* queue(const std::string& name);

  /// HTTP responses by status code (also those for no model: 404s, bad routes).
  void count_http_response(unsigned status) noexcept;

  /// gRPC calls answered, by status code (grpc::StatusCode's numbers, 0 = OK .. 16).
  void count_grpc_response(unsigned code) noexcept;

  /// HTTPS connections whose TLS handshake failed (plaintext, an old protocol, a client
  /// certificate missing or not signed by the client CA).
  void count_tls_handshake_failure() noexcept {
    tls_handshake_failures_.fetch_add(1, std::memory_order_relaxed);
  }

  /// HTTPS certificate files that changed: loaded for new connections, or not (kept the old).
  void count_tls_reload(bool loaded) noexcept {
    tls_reloads_[loaded ? 0 : 1].fetch_add(1, std::memory_order_relaxed);
  }

  /// Bytes of the request bodies the HTTP server holds now (read or being read, not yet
  /// answered): what http.max_inflight_body_bytes bounds. The HTTP server keeps it.
  std::atomic<uint64_t> http_body_bytes{0};

  /// Where GPU series come from (sampled at each scrape); without one there are none.
  void set_gpu_monitor(std::unique_ptr<gpu_monitor> m) { gpu_ = std::move(m); }

  /// The Prometheus text exposition of everything.
  std::string prometheus_text() const;

  /// Triton's statistics extension JSON for one model, or all when `model` is empty.
  std::string statistics_json(const std::string& model) const;

private:
  std::unordered_map<std::string, std::unique_ptr<model_metrics>> models_;
  std::vector<std::string> order_; // deployment order, for stable output
  std::vector<std::unique_ptr<queue_metrics>> queues_;
  std::array<std::atomic<uint64_t>, 600> http_responses_{};
  std::array<std::atomic<uint64_t>, 17> grpc_responses_{};
  bool https_ = false; // server.http.tls: its handshake failures are a series
  bool tracing_ = false; // server.tracing: the span recorder's counts are series
  std::atomic<uint64_t> tls_handshake_failures_{0};
  std::array<std::atomic<uint64_t>, 2> tls_reloads_{}; // loaded, failed
  std::unique_ptr<gpu_monitor> gpu_;
};

} // namespace actorserve
