// The actorserve executable: `serve` runs a deployment, `check-config` validates one.
#include <algorithm>
#include <atomic>
#include <csignal>
#include <sys/resource.h>
#include <unistd.h>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>

#include "actors/cluster.hpp"
#include "actors/supervisor.hpp"
#include "actors/worker_process.hpp"
#include "net/http_server.hpp"
#if ACTORSERVE_WITH_REDIS
#include "net/redis_ingress.hpp"
#endif
#if ACTORSERVE_WITH_GRPC
#include "net/grpc_server.hpp"
#endif
#include "runtime/config.hpp"
#include "runtime/error.hpp"
#include "runtime/log.hpp"
#include "runtime/model_backend.hpp"

using namespace actorserve;

namespace {

/// Each connection is a file descriptor: take the hard limit on open files, not the soft one
/// (often 1024), as servers do. Beyond it, accepting pauses (see http_server) and resumes.
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

std::atomic<bool> core_failed{false};

const char* usage =
  "usage:\n"
  "  actorserve serve --config FILE [--address IP] [--port N] [--grpc-port N]\n"
  "      Serves the deployment over HTTP (KServe v2), and over gRPC with server.grpc or\n"
  "      --grpc-port. Port 0 picks a free port; the bound addresses are printed as\n"
  "      'actorserve: listening on http[s]://IP:PORT' and 'actorserve: grpc on IP:PORT'.\n"
  "      SIGINT/SIGTERM stop it.\n"
  "  actorserve check-config FILE\n"
  "      Validates a deployment file without serving; exit status 0 when valid.\n"
  "  actorserve backends\n"
  "      Lists the compiled-in model backends.\n"
  "  actorserve worker --config FILE --model M --device D --instance I --connect PORT\n"
  "                    [--parent PID] [--shm-fd FD --shm-bytes N]\n"
  "      Internal: an isolated worker process, started by the node it connects back to.\n";

/// `actorserve worker ...`: the child side of process isolation.
int worker(int argc, char** argv) {
  std::string config, model, device = "cpu";
  uint32_t instance = 0;
  uint16_t port = 0;
  long parent = 0;
  int shm_fd = -1;
  std::size_t shm_bytes = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--config") config = v;
    else if (a == "--model") model = v;
    else if (a == "--device") device = v;
    else if (a == "--instance") instance = static_cast<uint32_t>(std::stoul(v));
    else if (a == "--connect") port = static_cast<uint16_t>(std::stoul(v));
    else if (a == "--parent") parent = std::stol(v);
    else if (a == "--shm-fd") shm_fd = std::stoi(v);
    else if (a == "--shm-bytes") shm_bytes = std::stoull(v);
    else {
      std::cerr << "actorserve worker: unknown option " << a << "\n" << usage;
      return 2;
    }
  }
  if (config.empty() || model.empty() || port == 0) {
    std::cerr << "actorserve worker: --config, --model and --connect are required\n" << usage;
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  return run_worker_process(config, model, device, instance, port, parent, shm_fd, shm_bytes);
}

int check_config(const std::string& path) {
  auto cfg = load_deployment_here(path);
  if (!cfg) {
    std::cerr << path << ": invalid deployment:\n" << error_message(cfg.error()) << "\n";
    return 1;
  }
  std::cout << path << ": ok (" << cfg->models.size() << " model"
            << (cfg->models.size() == 1 ? "" : "s") << ")\n";
  return 0;
}

int serve(int argc, char** argv) {
  std::string config_path, address;
  int port = -1, grpc_port = -1;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "actorserve: " << a << " needs a value\n" << usage;
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--config")
      config_path = value();
    else if (a == "--address")
      address = value();
    else if (a == "--port" || a == "--grpc-port") {
      auto v = value();
      int n = -2;
      try {
        n = std::stoi(v);
      } catch (...) {
      }
      if (n < 0 || n > 65535) {
        std::cerr << "actorserve: " << a << " must be 0..65535, got '" << v << "'\n";
        return 2;
      }
      (a == "--port" ? port : grpc_port) = n;
    } else {
      std::cerr << "actorserve: unknown argument '" << a << "'\n" << usage;
      return 2;
    }
  }
  if (config_path.empty()) {
    std::cerr << "actorserve: serve needs --config FILE\n" << usage;
    return 2;
  }
  auto t0 = std::chrono::steady_clock::now();
  auto loaded = load_deployment_here(config_path);
  if (!loaded) {
    std::cerr << config_path << ": invalid deployment:\n" << error_message(loaded.error()) << "\n";
    return 1;
  }
  if (!address.empty())
    loaded->server.http.address = address;
  if (port >= 0)
    loaded->server.http.port = static_cast<uint16_t>(port);
  if (grpc_port >= 0) {
    loaded->server.grpc.enabled = true;
    loaded->server.grpc.port = static_cast<uint16_t>(grpc_port);
  }
  auto cfg = std::make_shared<const deployment_config>(std::move(*loaded));

  logging::setup(cfg->server.log_level, cfg->server.log_format);
  raise_open_files_limit();

  // Signals are handled by this thread alone (sigwait below): block them before any thread starts.
  // A peer that closes its socket (or our stdout) must not kill the server.
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  caf::actor_system_config sys_cfg;
  sys_cfg.add_message_types<caf::id_block::actorserve>();
  sys_cfg.load<caf::io::middleman>(); // isolated workers and cluster nodes connect over it
  const auto& cluster = cfg->server.cluster;
  if (cluster.tls() && !tls_available()) {
    std::cerr << "actorserve: server.cluster.tls is set but this build has no TLS "
                 "(libcaf_openssl/OpenSSL were not found when it was built)\n";
    return 1;
  }
#if !ACTORSERVE_WITH_GRPC
  if (cfg->server.grpc.enabled) {
    std::cerr << "actorserve: server.grpc is set but this build has no gRPC front (built "
                 "without gRPC and protobuf, libgrpc++-dev, or with ACTORSERVE_WITH_GRPC off)\n";
    return 1;
  }
#endif
#if !ACTORSERVE_WITH_REDIS
  if (!cfg->server.queues.empty()) {
    std::cerr << "actorserve: server.queues is set but this build has no event-queue ingress "
                 "(built without hiredis, libhiredis-dev, or with ACTORSERVE_WITH_QUEUES off)\n";
    return 1;
  }
#endif
  configure_cluster(sys_cfg, cluster);
  if (cfg->server.scheduler_threads > 0)
    sys_cfg.set("scheduler.max-threads", static_cast<size_t>(cfg->server.scheduler_threads));
  sys_cfg.set("scheduler.policy", cfg->server.scheduler_policy == "sharing" ? caf::atom("sharing")
                                                                          : caf::atom("stealing"));
  sys_cfg.set("logger.verbosity", caf::atom("quiet"));
  int rc = 0;
  if (cluster.role == "worker") { // no HTTP, no batchers: workers for the front nodes it joins
    caf::actor_system sys{sys_cfg};
    auto root = spawn_worker_node(sys, cfg);
    std::printf("actorserve: worker node %s joining %zu front node(s)\n",
                node_name(cluster).c_str(), cluster.seeds.size());
    std::fflush(stdout);
    int sig = 0;
    sigwait(&signals, &sig);
    logging::info({"main"}, "received signal {}: leaving the cluster (draining)", sig);
    caf::anon_send_exit(root, caf::exit_reason::user_shutdown);
    auto grace = std::chrono::milliseconds(cluster.drain_timeout_ms) + std::chrono::seconds(5);
    std::thread([grace] {
      std::this_thread::sleep_for(grace);
      logging::warn({"main"}, "still running after the drain time: exiting");
      std::_Exit(0);
    }).detach();
    sys.await_all_actors_done();
    return 0;
  }
  {
    auto stats = std::make_shared<metrics>(*cfg); // (before sys: it outlives every actor)
    caf::actor_system sys{sys_cfg};
    stats->set_gpu_monitor(gpu_monitor::open()); // none where no NVIDIA driver exists
    auto spawned = spawn_node(sys, cfg, stats);
    if (!spawned) {
      std::cerr << "actorserve: " << error_message(spawned.error()) << "\n";
      return 1;
    }
    auto node = *spawned;
    auto supervisor = node.root;
    // The tree restarts what fails inside it (actors/supervisor.hpp); when the root itself gives
    // up (more failures than server.supervision allows) the process exits with status 1 and an
    // orchestrator restarts it.
    supervisor->attach_functor([](const caf::error& reason) {
      if (reason && reason != caf::exit_reason::user_shutdown) {
        logging::critical({"main"}, "the root supervisor stopped ({}): exiting",
                          error_message(reason));
        core_failed = true;
        ::kill(::getpid(), SIGTERM);
      }
    });
    auto infer = std::make_shared<inference>(sys, node.gateway, cfg, stats);
    http_server server{infer};
    auto bound = server.start();
    if (!bound) {
      std::cerr << "actorserve: " << error_message(bound.error()) << "\n";
      caf::anon_send_exit(supervisor, caf::exit_reason::user_shutdown);
      for (auto& b : node.brokers)
        caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
      return 1;
    }
#if ACTORSERVE_WITH_GRPC
    std::unique_ptr<grpc_server> grpc;
    if (cfg->server.grpc.enabled) {
      grpc = std::make_unique<grpc_server>(infer);
      auto grpc_bound = grpc->start();
      if (!grpc_bound) {
        std::cerr << "actorserve: " << error_message(grpc_bound.error()) << "\n";
        server.stop();
        caf::anon_send_exit(supervisor, caf::exit_reason::user_shutdown);
        for (auto& b : node.brokers)
          caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
        return 1;
      }
      std::printf("actorserve: grpc on %s:%u%s\n", cfg->server.grpc.address.c_str(),
                  static_cast<unsigned>(*grpc_bound),
                  !cfg->server.grpc.tls.enabled()        ? ""
                  : cfg->server.grpc.tls.client_ca.empty() ? " (TLS)"
                                                           : " (TLS, client certificates)");
    }
    auto grpc_in_progress = [&] { return grpc ? grpc->requests_in_progress() : std::size_t{0}; };
#else
    auto grpc_in_progress = [] { return std::size_t{0}; };
#endif
#if ACTORSERVE_WITH_REDIS
    std::vector<std::unique_ptr<redis_ingress>> queues;
    for (auto& q : cfg->server.queues) {
      queues.push_back(std::make_unique<redis_ingress>(infer, q));
      queues.back()->start();
    }
    auto queues_in_progress = [&] {
      std::size_t n = 0;
      for (auto& q : queues)
        n += q->in_progress();
      return n;
    };
#else
    auto queues_in_progress = [] { return std::size_t{0}; };
#endif
    auto in_progress = [&] {
      return server.requests_in_progress() + grpc_in_progress() + queues_in_progress();
    };
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - t0).count();
    std::printf("actorserve: listening on %s://%s:%u (%zu models, %lld ms after start)\n",
                cfg->server.http.tls.enabled() ? "https" : "http",
                cfg->server.http.address.c_str(), static_cast<unsigned>(*bound),
                cfg->models.size(), static_cast<long long>(ms));
    std::fflush(stdout);
    int sig = 0;
    sigwait(&signals, &sig);
    // Graceful: no new connections, 503 to new requests, the ones already read are answered
    // (bounded by http.drain_timeout_ms; a second signal ends the wait).
    // (Not when the root supervisor gave up: nothing would answer what is in flight.)
    auto drain = std::chrono::milliseconds(core_failed ? 0 : cfg->server.http.drain_timeout_ms);
    logging::info({"main"}, "received signal {}: draining ({} requests in progress, up to {} ms)",
                  sig, in_progress(), drain.count());
    server.begin_drain();
#if ACTORSERVE_WITH_GRPC
    if (grpc)
      grpc->begin_drain();
#endif
#if ACTORSERVE_WITH_REDIS
    for (auto& q : queues)
      q->begin_drain(); // (entries not read stay in their streams for the other nodes)
#endif
    auto deadline = std::chrono::steady_clock::now() + drain;
    while (in_progress() > 0 && std::chrono::steady_clock::now() < deadline) {
      timespec tick{0, 10'000'000};
      if (sigtimedwait(&signals, nullptr, &tick) > 0) {
        logging::warn({"main"}, "second signal: stopping without waiting for {} requests",
                      in_progress());
        break;
      }
    }
    if (auto left = in_progress(); left > 0)
      logging::warn({"main"}, "{} requests still unanswered at the end of the drain: their "
                              "connections are closed (queue entries stay pending for the "
                              "group)", left);
    logging::info({"main"}, "shutting down");
#if ACTORSERVE_WITH_REDIS
    for (auto& q : queues)
      q->stop();
#endif
#if ACTORSERVE_WITH_GRPC
    if (grpc)
      grpc->stop();
#endif
    server.stop();
    caf::anon_send_exit(supervisor, caf::exit_reason::user_shutdown);
    for (auto& b : node.brokers)
      caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
    // The actor system's destructor waits for every actor. A worker abandoned as hung may be
    // blocked in its backend forever: after a grace period the process exits regardless.
    std::thread([] {
      std::this_thread::sleep_for(std::chrono::seconds(5));
      logging::warn({"main"}, "actors still running 5 s after shutdown began (a hung worker?): "
                              "exiting without waiting for them");
      std::_Exit(core_failed ? 1 : 0);
    }).detach();
    sys.await_all_actors_done();
  }
  return core_failed ? 1 : rc;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << usage;
    return 2;
  }
  std::string cmd = argv[1];
  if (cmd == "serve")
    return serve(argc, argv);
  if (cmd == "worker")
    return worker(argc, argv);
  if (cmd == "check-config") {
    if (argc != 3) {
      std::cerr << usage;
      return 2;
    }
    return check_config(argv[2]);
  }
  if (cmd == "backends") {
    for (auto& n : backend_registry::global().names())
      std::cout << n << "\n";
    return 0;
  }
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::cout << usage;
    return 0;
  }
  if (cmd == "--version") {
    std::cout << "actorserve 0.1.0\n";
    return 0;
  }
  std::cerr << "actorserve: unknown command '" << cmd << "'\n" << usage;
  return 2;
}
