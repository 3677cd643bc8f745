// The deployment file's model: typed structs with documented defaults (config/README.md lists
// every key), parsed and validated in one place. Every error names the JSON path and the reason.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "runtime/api_access.hpp"
#include "runtime/supervision_policy.hpp"
#include "runtime/tensor.hpp"

namespace actorserve {

/// A front's TLS (server.http.tls, server.grpc.tls): PEM files; a certificate (chain) and its
/// key, or neither (plaintext); with a client CA, only clients showing a certificate it signed.
struct server_tls {
  std::string certificate, key, client_ca;
  uint32_t reload_interval_ms = 10'000; // HTTPS: how often changed files are looked for; 0 = never
  bool enabled() const { return !certificate.empty(); }
};

struct http_config {
  std::string address = "127.0.0.1";
  uint16_t port = 8000;
  uint32_t io_threads = 2;
  uint64_t max_body_bytes = 64ull << 20;
  uint32_t header_timeout_ms = 10'000; // time to receive a request's header
  uint32_t body_timeout_ms = 60'000;   // time to receive its body
  uint32_t min_body_bytes_per_s = 1'024; // after body_grace_ms, a body's average rate; 0 = any
  uint32_t body_grace_ms = 5'000;
  uint32_t idle_timeout_ms = 120'000;  // keep-alive connection without a request
  uint32_t max_connections = 10'000;   // open at once; more are refused (503); 0 = no bound
  uint32_t max_connections_per_client = 2'048; // from one client address; 0 = no bound
  uint32_t drain_timeout_ms = 20'000;  // on SIGTERM/SIGINT: how long requests in flight may finish
  uint64_t max_inflight_body_bytes = 2ull << 30; // request bodies held at once (read, not answered)
  uint32_t compression_level = 1;        // responses to clients that accept gzip/deflate; 0 = never
  uint64_t compression_min_bytes = 1024; // smaller responses go as they are
  bool allow_shared_memory = false; // Triton's system shared memory extension (same-host clients)
  std::vector<std::string> shared_memory_key_prefixes; // keys clients may register; empty: any
  bool shared_memory_owner_check = true; // a client registers only objects its own user owns
  uint32_t model_load_wait_ms = 300'000; // POST .../load answers once the model is ready, or 503
  // Origins (scheme://host[:port]) whose browser pages may send state-changing requests; a
  // request with any other Origin header is refused (403), so a web page cannot unload models.
  std::vector<std::string> allowed_origins;
  server_tls tls; // HTTPS
};

/// The KServe v2 gRPC endpoint (server.grpc): on when the object is given.
struct grpc_config {
  bool enabled = false;
  std::string address = "127.0.0.1";
  uint16_t port = 8001; // 0 = any free port
  uint64_t max_message_bytes = 64ull << 20; // a larger request gets RESOURCE_EXHAUSTED
  uint32_t max_concurrent_streams = 1'024; // per connection (HTTP/2 SETTINGS)
  uint32_t max_metadata_bytes = 16'384;    // a call's metadata (headers)
  uint64_t memory_quota_bytes = 2ull << 30; // gRPC's own buffers, all calls together
  uint32_t max_stream_pending = 256; // answers of one ModelStreamInfer to run or write before
                                     // it reads the next request
  server_tls tls;
};

struct restart_config {
  uint32_t max_restarts = 5; // within period_s; one more and the supervisor gives up (escalates)
  uint32_t period_s = 60;
  uint32_t backoff_initial_ms = 100;
  uint32_t backoff_max_ms = 10'000;
  double backoff_factor = 2.0;
  double backoff_jitter = 0.1; // each delay is scaled by a random factor in [1 - j, 1 + j]
  restart_strategy strategy = restart_strategy::one_for_one;
  uint32_t shutdown_ms = 5000;          // a child asked to stop is killed after this long
};

/// The root of the supervision tree (server.supervision); see config/README.md for the tree.
struct root_supervision_config {
  restart_config restart{10, 60, 100, 10'000, 2.0, 0.1, restart_strategy::one_for_one, 5000};
  restart_type model_restart = restart_type::temporary; // of each model's subtree under the root
  // A model given up (its supervisors past their intensity, not restarted by model_restart) is
  // started again after model_cooldown_ms, doubling with each give-up in a row up to
  // model_cooldown_max_ms (a model that served that long starts over); 0 = it stays down.
  uint32_t model_cooldown_ms = 10'000;
  uint32_t model_cooldown_max_ms = 300'000;
};

/// A node's part in a cluster (server.cluster.role): standalone, front or worker.
enum class cluster_role { both, front, worker };
/// CAF's scheduler (server.scheduler_policy).
enum class caf_scheduler { sharing, stealing };
/// The floating-point type a model runs in on a GPU (models[].gpu.precision).
enum class gpu_precision { fp32, fp16, bf16 };
/// Where a model's workers run (models[].isolation): in the node, or each in a child process.
enum class isolation_mode { none, process };

/// The name each closed option has in the deployment file ("front", "fp16", ...).
std::string_view to_string(cluster_role r);
std::string_view to_string(caf_scheduler s);
std::string_view to_string(gpu_precision p);
std::string_view to_string(isolation_mode m);

/// Several nodes as one service (server.cluster): front nodes serve HTTP and batch; worker nodes
/// join them over CAF networking and run workers for their batchers.
struct cluster_config {
  cluster_role role = cluster_role::both;
  std::string node_name;             // default: the host name and process id
  std::string listen_address = "127.0.0.1"; // front: where worker nodes join
  uint16_t listen_port = 0;          // front: 0 = accept no joins
  std::vector<std::string> seeds;    // worker: front nodes to join, "host:port"
  uint32_t heartbeat_ms = 500;       // CAF middleman heartbeats between nodes
  uint32_t timeout_ms = 3000;        // a peer silent this long is taken as failed
  uint32_t reconnect_initial_ms = 200;
  uint32_t reconnect_max_ms = 5000;
  uint32_t drain_timeout_ms = 10'000; // graceful leave: in-flight batches may finish this long
  std::string tls_certificate, tls_key, tls_ca; // all three: TLS with peers signed by tls_ca
  bool insecure = false; // allow a cluster port beyond loopback without TLS (CAF trusts peers)
  bool tls() const { return !tls_certificate.empty(); }
};

/// A Redis stream this node takes inference requests from (server.queues[]): its entries are
/// read through a consumer group (each entry goes to one node of those sharing the group),
/// answered on a reply stream and acknowledged once answered. config/README.md explains each key.
struct queue_config {
  std::string name;            // for logs and metrics; default: the stream's name
  std::string redis_host = "127.0.0.1";
  uint16_t redis_port = 6379;
  uint32_t redis_db = 0;
  std::string redis_username;  // with a password: Redis 6 ACL user
  std::string redis_password_env; // the environment variable holding the password ("" = none)
  std::string stream;          // required
  std::string group = "actorserve";
  std::string consumer;        // default: the host name and process id
  std::string model;           // entries without a "model" field go to it ("" = they must name one)
  std::string reply_stream;    // answers to entries without "reply_to"; default: stream + ":replies"
  // What an entry's "reply_to" must start with (one of them); empty: reply_stream. The node adds
  // to (and trims) the streams entries name, so this keeps them to the ones meant for answers.
  std::vector<std::string> reply_to_prefixes;
  std::string dead_letter_stream; // entries given up (max_deliveries) are kept here too; "" = not
  uint64_t reply_maxlen = 100'000; // reply streams trimmed (approximately) to this; 0 = never
  uint32_t max_in_flight = 128;    // entries read and not yet answered
  uint64_t max_entry_bytes = 64ull << 20; // an entry's body; larger ones are answered 413
  uint32_t claim_idle_ms = 120'000; // an entry pending this long on another consumer is taken over
  uint32_t max_deliveries = 3;  // an entry delivered this often without an answer is not run again
  bool delete_answered = true;  // XDEL an entry once answered (the stream holds only open work)
  uint32_t connect_timeout_ms = 2000;
  uint32_t reconnect_max_ms = 5000; // reconnection backoff's ceiling (from 100 ms, doubling)
};

/// OpenTelemetry tracing (server.tracing; runtime/tracing.hpp): spans of every stage of a
/// request, exported over OTLP to a collector. Off unless the object is given.
struct tracing_config {
  bool enabled = false;
  std::string protocol = "http/protobuf"; // or "grpc"
  // OTLP/HTTP: the full URL (http://HOST:PORT/v1/traces); gRPC: http://HOST:PORT. Plain text:
  // run the collector beside the node or on a trusted network.
  std::string endpoint = "http://127.0.0.1:4318/v1/traces";
  std::map<std::string, std::string> headers; // sent with every export (a collector's token)
  std::string service_name = "actorserve";
  std::map<std::string, std::string> resource_attributes; // beside service.name
  double sample_ratio = 1.0;  // of the traces this node starts (and of all, without parent_based)
  bool parent_based = true;   // follow a caller's traceparent sampled flag
  bool sample_errors = true;  // failed requests are recorded even when not sampled
  uint32_t sample_slower_than_ms = 0; // ... and those that took this long; 0: not by latency
  uint32_t max_queue_spans = 2048;    // spans waiting for export; more are dropped (counted)
  uint32_t max_export_batch = 512;    // spans per export call
  uint32_t export_interval_ms = 1000; // the longest a span waits for its export
  uint32_t export_timeout_ms = 2000;  // one export call, connection included
};

struct server_config {
  http_config http;
  grpc_config grpc;
  cluster_config cluster;
  tracing_config tracing;
  std::vector<queue_config> queues; // event-queue ingress (Redis streams)
  uint32_t scheduler_threads = 0; // CAF worker threads; 0 = CAF's default
  caf_scheduler scheduler_policy = caf_scheduler::sharing;
  std::string log_level = "info"; // trace, debug, info, warn, error, off
  std::string log_format = "text"; // "text" or "json" (JSON lines)
  bool fault_injection = false;   // honour the test-only "actorserve_fault" request parameter
  root_supervision_config supervision;
  std::vector<api_restriction> restricted_apis; // groups served only with a header's value
  bool model_control = true; // false: model load and unload are refused on both fronts
};

struct tensor_spec {
  std::string name;
  datatype dtype = datatype::FP32;
  std::vector<int64_t> dims; // without the batch dimension when max_batch_size > 0; -1 = any
  std::string labels_file{};       // outputs: a class name per line, for classification answers
  std::vector<std::string> labels{}; // its lines (label i names class index i)
};

struct batching_config {
  uint32_t max_queue_delay_us = 1000;
  std::vector<uint32_t> preferred_batch_sizes;
  uint32_t max_queue_size = 1024;
  // A worker that holds several batches (gpu.inflight_batches) takes a partial batch just before
  // its device runs out of work (learned from its batch times); false: only full batches until
  // it is idle.
  bool stage_ahead = true;
  // Triton's priority levels: requests with the parameter "priority" 1 (highest) ..
  // priority_levels are queued ahead of those with a higher number; 0 levels: no priorities.
  uint32_t priority_levels = 0;
  uint32_t default_priority_level = 0; // for requests without one; 0 = priority_levels (lowest)
};

struct warmup_config {
  std::vector<uint32_t> batch_sizes{1}; // each runs `iterations` times on zero inputs
  uint32_t iterations = 1;
};

struct breaker_settings {
  uint32_t failure_threshold = 3; // consecutive failed batches that open a worker's breaker
  uint32_t reset_timeout_ms = 1000;
  uint32_t max_reset_timeout_ms = 30'000;
  double backoff_factor = 2.0;
};

/// Load-based scaling of a model's worker instances (runtime/autoscale_policy.hpp decides;
/// config/README.md explains each key). Ray Serve's autoscaling semantics (target ongoing
/// requests per instance, upscale and downscale delays, a look-back window, smoothing factors),
/// plus a queue-wait target and scaling up on predicted deadline misses.
struct autoscaling_settings {
  bool enabled = false;
  uint32_t min_instances = 1;     // in all (over the model's devices); 0: scale to zero
  uint32_t max_instances = 1;
  uint32_t initial_instances = 0; // at start; 0 (unset): min_instances, at least 1
  uint32_t max_per_device = 0;    // instances one device holds at most; 0: max_instances
  double target_ongoing_requests = 2.0; // queued + running requests per instance
  double target_queue_wait_ms = 0;      // the quantile below kept under this; 0: no such target
  double queue_wait_quantile = 0.95;
  bool predicted_misses = true;   // scale up at once when queued requests will miss deadlines
  uint32_t upscale_delay_ms = 3'000;
  uint32_t downscale_delay_ms = 30'000;
  uint32_t look_back_ms = 10'000;       // ongoing requests averaged over this window
  uint32_t interval_ms = 500;           // how often the figures are read and a decision made
  double upscaling_factor = 1.0;        // smoothing: the share of the wanted change made at once
  double downscaling_factor = 1.0;
  double max_busy_after_downscale = 0.8; // the busy share those that stay may reach; 0: off
};

/// How a model runs on a GPU (ignored on the CPU). config/README.md explains each key.
struct gpu_settings {
  gpu_precision precision = gpu_precision::fp32; // weights and floating inputs
  bool channels_last = false;     // 4-D inputs and weights in NHWC memory order
  bool cudnn_benchmark = true;    // cuDNN autotuner (runs during warm-up, per bucket)
  bool cuda_graphs = false;       // capture the model per batch bucket and replay it
  std::vector<uint32_t> batch_buckets; // batches are padded up to one; empty: powers of two
                                       // up to max_batch_size, and max_batch_size
  uint32_t inflight_batches = 1;  // batches a GPU worker holds at once (2: copy overlaps compute)
};

/// Turns raw images (the client sends UINT8 [H, W, 3]) into the model's normalized
/// [3, H', W'] floating input: y = (x * scale - mean[c]) / std[c], optionally resized
/// (bilinear). Runs as a CUDA kernel on GPU workers and on the CPU otherwise.
struct preprocess_settings {
  bool enabled = false;
  std::string input;            // the declared UINT8 input it applies to
  uint32_t resize_height = 0;   // 0: keep the image's size
  uint32_t resize_width = 0;
  double scale = 1.0 / 255.0;
  std::vector<double> mean{0.0, 0.0, 0.0};
  std::vector<double> stdev{1.0, 1.0, 1.0};
};

/// One step of a pipeline model: a request to another model of the deployment, or to a stage
/// actor (runtime/stage.hpp), its inputs taken from the pipeline's tensors (the pipeline's inputs
/// and earlier steps' outputs), its outputs added to them (as NVIDIA Triton's ensemble steps map
/// them).
struct pipeline_step {
  std::string model;                          // either a model of the deployment,
  std::map<std::string, std::string> inputs;  // the step model's input <- a pipeline tensor
  std::map<std::string, std::string> outputs; // the step model's output -> a pipeline tensor
  std::string stage{};      // or else a registered stage,
  std::string parameters{}; // with its "parameters" object as JSON text ("" when none)

  bool is_stage() const { return !stage.empty(); }
};

struct model_config {
  std::string name;
  std::string version = "1";
  std::string backend = "torchscript";
  std::string path; // resolved against the deployment file's folder
  uint32_t max_batch_size = 0; // 0: the model takes no batch dimension; requests run one by one
  std::vector<tensor_spec> inputs;
  std::vector<tensor_spec> outputs;
  std::vector<std::string> devices{"cpu"};
  uint32_t instances = 1; // per device (with autoscaling: started at first, see there)
  autoscaling_settings autoscaling;
  batching_config batching;
  warmup_config warmup;
  restart_config restart;             // the model's workers supervisor
  uint32_t model_max_restarts = 3;    // restarts of the model's workers subtree within
                                      // restart.period_s before the model supervisor escalates
  uint32_t max_retries = 2;           // re-dispatches of a request after a worker-caused failure
  breaker_settings breaker;
  uint32_t execution_timeout_ms = 30'000; // a batch running longer marks its worker hung; 0 = off
  uint64_t default_timeout_us = 10'000'000;
  uint64_t max_timeout_us = 60'000'000;
  uint64_t response_cache_bytes = 0; // answers kept for equal requests; 0 = no response cache
  std::map<std::string, std::string> parameters; // backend-specific, values as written
  /// The CPU threads one CPU instance computes with where its backend is not told
  /// (share_cpu_threads); 0: the library's default.
  uint32_t cpu_threads = 0;
  /// After a batch, a worker that runs one batch at a time stays awake up to this long for its
  /// next one, yielding its core to any other thread meanwhile (what Linux's guest halt-polling
  /// does, 200 µs by default, for a whole vCPU), and the batcher gives the next batch to the worker
  /// that finished last: a request arriving meanwhile does not wait for a halted core to wake.
  /// 0: a worker sleeps at once, and idle workers take batches in turn.
  uint32_t linger_us = 200;
  gpu_settings gpu;
  preprocess_settings preprocess;
  isolation_mode isolation = isolation_mode::none;
  uint64_t isolation_shm_bytes = 1ull << 30; // per isolated worker: shared memory for batch inputs
  /// Not empty: this model is a pipeline of other models (no backend, no workers of its own);
  /// a step runs as soon as the tensors it takes exist, so independent steps run at once.
  std::vector<pipeline_step> pipeline;

  bool is_pipeline() const { return !pipeline.empty(); }

  /// The worker instances of this model on a node, as (device, instance index), in the order
  /// they start (and, reversed, stop when scaled down): device by device without autoscaling;
  /// with it, spread over the devices (index 0 on each, then 1, ...), at most max_per_device on
  /// one, max_instances in all.
  std::vector<std::pair<std::string, uint32_t>> instance_slots() const;
  /// How many of instance_slots() start with the model (all of them without autoscaling).
  uint32_t initial_instances() const;

  /// The batch sizes a GPU worker pads to and warms up (sorted; the last is max_batch_size).
  /// Empty when the model does not batch.
  std::vector<uint32_t> gpu_buckets() const;

  /// The full shape of input/output `spec` for a batch of `rows` (-1 dims replaced by `fill`).
  std::vector<int64_t> batched_shape(const tensor_spec& spec, int64_t rows, int64_t fill = 1) const;
  const tensor_spec* find_input(const std::string& name) const;
  const tensor_spec* find_output(const std::string& name) const;
};

struct deployment_config {
  server_config server;
  std::vector<model_config> models;
  std::string source; // the file it was loaded from (isolated workers load it too); may be empty
  std::vector<std::string> plugins; // shared libraries loaded with it (runtime/plugin.hpp)

  const model_config* find_model(const std::string& name) const;
};

/// Parses and validates a deployment from JSON text. `base_dir` resolves relative model paths;
/// `known_backends` are the backend names compiled in. On failure the error (errc::invalid_config)
/// lists every problem, one per line, each starting with its JSON path.
caf::expected<deployment_config>
parse_deployment(const std::string& json_text, const std::string& base_dir,
                 const std::vector<std::string>& known_backends);

/// Replaces "all" in every model's devices by the `cuda_devices` GPUs ("cpu" when there are none)
/// and checks that every "cuda:N" exists; the error (errc::invalid_config) names the model.
caf::error resolve_devices(deployment_config& cfg, int cuda_devices);

/// Shares the node's `cores` among the deployment's CPU instances (each model's instance_slots()
/// on "cpu", the most autoscaling may start, isolated ones too): every model's cpu_threads is
/// cores / instances, at least 1. One instance computing with every core while another does the
/// same oversubscribes the cores: at concurrency 64 the quickstart MLP (2 instances, 2 cores)
/// answered 24k requests/s with libtorch's default of all cores per instance, 29k with 1.
void share_cpu_threads(deployment_config& cfg, unsigned cores);

/// Reads `path` and parses it as above, relative paths resolving against its folder.
caf::expected<deployment_config>
load_deployment(const std::string& path, const std::vector<std::string>& known_backends);

} // namespace actorserve
