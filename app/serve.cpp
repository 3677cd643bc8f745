#include "app/serve.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <thread>

#include <sys/resource.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>

#include "actors/cluster.hpp"
#include "actors/node_tree.hpp"
#include "net/front.hpp"
#include "net/inference.hpp"
#include "runtime/config.hpp"
#include "runtime/error.hpp"
#include "runtime/gpu_monitor.hpp"
#include "runtime/log.hpp"
#include "runtime/metrics.hpp"
#include "runtime/model_backend.hpp"
#include "runtime/tracing.hpp"

namespace actorserve {
namespace {

using clock_type = std::chrono::steady_clock;
using config_ptr = std::shared_ptr<const deployment_config>;

/// Set when the root supervisor gives up: the process then exits with status 1.
std::atomic<bool> core_failed{false};

/// Each connection is a file descriptor: take the hard limit on open files, not the soft one
/// (often 1024), as servers do. Beyond it, accepting pauses (see net/http/server) and resumes.
void raise_open_files_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= lim.rlim_max)
    return;
  auto before = lim.rlim_cur;
  lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, rlim_t{1} << 20);
  if (lim.rlim_cur <= before)
    return;
  if (setrlimit(RLIMIT_NOFILE, &lim) == 0)
    logging::debug({"main"}, "open files limit raised from {} to {}", before, lim.rlim_cur);
}

/// The deployment file with the command line's overrides; an error names what is wrong.
caf::expected<config_ptr> load_config(const serve_options& opts) {
  auto loaded = load_deployment_here(opts.config_path);
  if (!loaded)
    return make_error(errc::invalid_config, opts.config_path + ": invalid deployment:\n"
                                              + error_message(loaded.error()));
  auto& server = loaded->server;
  if (!opts.address.empty())
    server.http.address = opts.address;
  if (opts.port)
    server.http.port = *opts.port;
  if (opts.grpc_port) {
    server.grpc.enabled = true;
    server.grpc.port = *opts.grpc_port;
  }
  if (server.cluster.tls() && !tls_available())
    return make_error(errc::invalid_config,
                      "server.cluster.tls is set but this build has no TLS (libcaf_openssl/"
                      "OpenSSL were not found when it was built)");
  if (auto missing = missing_front(*loaded, front_registry::global()))
    return missing;
  if (server.tracing.enabled && !tracing::sink_available())
    return make_error(errc::invalid_config,
                      "server.tracing is set but this build has no OTLP exporter (built without "
                      "protobuf: libprotobuf-dev, protobuf-compiler)");
  return std::make_shared<const deployment_config>(std::move(*loaded));
}

/// Signals are handled by the main thread alone (sigwait): blocked before any thread starts.
/// A peer that closes its socket (or our stdout) must not kill the server.
sigset_t block_stop_signals() {
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

void configure_system(caf::actor_system_config& sys_cfg, const deployment_config& cfg) {
  sys_cfg.add_message_types<caf::id_block::actorserve>();
  sys_cfg.load<caf::io::middleman>(); // isolated workers and cluster nodes connect over it
  configure_cluster(sys_cfg, cfg.server.cluster);
  if (cfg.server.scheduler_threads > 0)
    sys_cfg.set("scheduler.max-threads", static_cast<size_t>(cfg.server.scheduler_threads));
  sys_cfg.set("scheduler.policy", cfg.server.scheduler_policy == caf_scheduler::sharing
                                    ? caf::atom("sharing")
                                    : caf::atom("stealing"));
  sys_cfg.set("logger.verbosity", caf::atom("quiet"));
}

/// The actor system's destructor waits for every actor. A worker abandoned as hung may be
/// blocked in its backend forever: once armed, after `grace` the process exits regardless.
/// Declared before the actor system, so that it is disarmed (and its thread joined) only once the
/// system is gone, and never fires while the process exits normally (its log would write to a
/// logger that exit has already destroyed).
class exit_watchdog {
public:
  exit_watchdog() = default;
  exit_watchdog(const exit_watchdog&) = delete;
  exit_watchdog& operator=(const exit_watchdog&) = delete;

  void arm(std::chrono::milliseconds grace, const char* what) {
    thread_ = std::thread([this, grace, what] {
      std::unique_lock<std::mutex> lock{mtx_};
      if (cv_.wait_for(lock, grace, [this] { return disarmed_; }))
        return;
      logging::warn({"main"}, "{}", what);
      std::_Exit(core_failed ? 1 : 0);
    });
  }

  ~exit_watchdog() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      disarmed_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable())
      thread_.join();
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  bool disarmed_ = false;
  std::thread thread_;
};

/// A worker node (server.cluster.role "worker"): no fronts, no batchers; workers for the front
/// nodes it joins, until a signal makes it leave (draining).
int run_worker_node(caf::actor_system_config& sys_cfg, const config_ptr& cfg,
                    const sigset_t& signals) {
  const auto& cluster = cfg->server.cluster;
  exit_watchdog watchdog;
  caf::actor_system sys{sys_cfg};
  auto root = spawn_worker_node(sys, cfg);
  std::printf("actorserve: worker node %s joining %zu front node(s)\n",
              node_name(cluster).c_str(), cluster.seeds.size());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&signals, &sig);
  logging::info({"main"}, "received signal {}: leaving the cluster (draining)", sig);
  caf::anon_send_exit(root, caf::exit_reason::user_shutdown);
  watchdog.arm(std::chrono::milliseconds(cluster.drain_timeout_ms) + std::chrono::seconds(5),
               "still running after the drain time: exiting");
  sys.await_all_actors_done();
  return 0;
}

void stop_actors(const node_handles& node) {
  caf::anon_send_exit(node.root, caf::exit_reason::user_shutdown);
  for (auto& b : node.brokers)
    caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
}

/// The fronts of a node, driven together.
class fronts {
public:
  /// Starts every front the deployment asks for, by rank; prints what each announces, the last
  /// line with the node's summary (scripts wait for it). On an error, stops those started.
  caf::error start(const std::shared_ptr<inference>& infer, clock_type::time_point t0) {
    std::vector<std::string> lines;
    for (auto& kind : front_registry::global().kinds())
      for (auto& f : kind.make(infer)) {
        auto said = f->start();
        all_.push_back(std::move(f));
        if (!said) {
          stop();
          return std::move(said.error());
        }
        if (!said->empty())
          lines.push_back(std::move(*said));
      }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0);
    for (std::size_t i = 0; i < lines.size(); ++i)
      if (i + 1 < lines.size())
        std::printf("actorserve: %s\n", lines[i].c_str());
      else
        std::printf("actorserve: %s (%zu models, %lld ms after start)\n", lines[i].c_str(),
                    infer->config()->models.size(), static_cast<long long>(ms.count()));
    std::fflush(stdout);
    return {};
  }

  std::size_t in_flight() const {
    std::size_t n = 0;
    for (auto& f : all_)
      n += f->in_flight();
    return n;
  }

  /// Graceful: no new requests (503 / UNAVAILABLE; queue entries not read stay in their streams
  /// for the other nodes); those already taken are answered, for up to `drain` (a second signal
  /// ends the wait).
  void drain(std::chrono::milliseconds drain, const sigset_t& signals) {
    for (auto& f : all_)
      f->begin_drain();
    auto deadline = clock_type::now() + drain;
    while (in_flight() > 0 && clock_type::now() < deadline) {
      timespec tick{0, 10'000'000};
      if (sigtimedwait(&signals, nullptr, &tick) > 0) {
        logging::warn({"main"}, "second signal: stopping without waiting for {} requests",
                      in_flight());
        break;
      }
    }
    if (auto left = in_flight(); left > 0)
      logging::warn({"main"}, "{} requests still unanswered at the end of the drain: their "
                              "connections are closed (queue entries stay pending for the "
                              "group)", left);
  }

  void stop() {
    for (auto f = all_.rbegin(); f != all_.rend(); ++f)
      (*f)->stop();
  }

private:
  std::vector<std::unique_ptr<front>> all_;
};

/// The tree restarts what fails inside it (actors/node_tree.hpp); when the root itself gives up
/// (more failures than server.supervision allows) the process exits with status 1 and an
/// orchestrator restarts it.
void exit_when_root_gives_up(const caf::actor& root) {
  root->attach_functor([](const caf::error& reason) {
    if (reason && reason != caf::exit_reason::user_shutdown) {
      logging::critical({"main"}, "the root supervisor stopped ({}): exiting",
                        error_message(reason));
      core_failed = true;
      ::kill(::getpid(), SIGTERM);
    }
  });
}

/// A front node (role "both" or "front"): the supervision tree and its fronts, until a signal.
int run_front_node(caf::actor_system_config& sys_cfg, const config_ptr& cfg,
                   const sigset_t& signals, clock_type::time_point t0) {
  auto stats = std::make_shared<metrics>(*cfg); // (before sys: it outlives every actor)
  exit_watchdog watchdog;
  caf::actor_system sys{sys_cfg};
  stats->set_gpu_monitor(gpu_monitor::open()); // none where no NVIDIA driver exists
  auto node = spawn_node(sys, cfg, stats);
  if (!node) {
    std::cerr << "actorserve: " << error_message(node.error()) << "\n";
    return 1;
  }
  exit_when_root_gives_up(node->root);
  fronts serving;
  if (auto err = serving.start(std::make_shared<inference>(sys, node->gateway, node->directory, cfg, stats), t0)) {
    std::cerr << "actorserve: " << error_message(err) << "\n";
    stop_actors(*node);
    return 1;
  }
  int sig = 0;
  sigwait(&signals, &sig);
  // (No drain when the root supervisor gave up: nothing would answer what is in flight.)
  auto drain = std::chrono::milliseconds(core_failed ? 0 : cfg->server.http.drain_timeout_ms);
  logging::info({"main"}, "received signal {}: draining ({} requests in progress, up to {} ms)",
                sig, serving.in_flight(), drain.count());
  serving.drain(drain, signals);
  logging::info({"main"}, "shutting down");
  serving.stop();
  stop_actors(*node);
  watchdog.arm(std::chrono::seconds(5), "actors still running 5 s after shutdown began (a hung "
                                        "worker?): exiting without waiting for them");
  sys.await_all_actors_done();
  return core_failed ? 1 : 0;
}

} // namespace

int serve(const serve_options& opts) {
  auto t0 = clock_type::now();
  auto cfg = load_config(opts);
  if (!cfg) {
    std::cerr << "actorserve: " << error_message(cfg.error()) << "\n";
    return 1;
  }
  logging::setup((*cfg)->server.log_level, (*cfg)->server.log_format);
  auto traced = tracing::session::start((*cfg)->server.tracing); // (exports until serve returns)
  if (!traced) {
    std::cerr << "actorserve: " << error_message(traced.error()) << "\n";
    return 1;
  }
  raise_open_files_limit();
  auto signals = block_stop_signals();
  caf::actor_system_config sys_cfg;
  configure_system(sys_cfg, **cfg);
  if ((*cfg)->server.cluster.role == cluster_role::worker)
    return run_worker_node(sys_cfg, *cfg, signals);
  return run_front_node(sys_cfg, *cfg, signals, t0);
}

} // namespace actorserve
