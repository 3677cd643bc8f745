#include "actors/worker_process.hpp"

#include "actors/cluster.hpp"

#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "runtime/error.hpp"
#include "runtime/log.hpp"
#include "runtime/model_backend.hpp"

extern char** environ;

namespace actorserve {
namespace {

constexpr const char* token_variable = "ACTORSERVE_WORKER_TOKEN";

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    return "killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
  }
  if (WIFEXITED(status))
    return "exited with status " + std::to_string(WEXITSTATUS(status));
  return "ended";
}

struct process_state {
  pid_t pid = -1;
  bool reaped = false;
  std::string label;
  std::chrono::milliseconds shutdown{5000};
  static inline const char* name = "worker_process";

  /// Ends the process: SIGTERM, up to `grace` for it to exit, then SIGKILL. Reaps it.
  std::string stop(std::chrono::milliseconds grace) {
    if (pid <= 0 || reaped)
      return "";
    ::kill(pid, grace.count() > 0 ? SIGTERM : SIGKILL);
    int status = 0;
    auto until = std::chrono::steady_clock::now() + grace;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() >= until) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    reaped = true;
    return describe_status(status);
  }

  ~process_state() { stop(std::chrono::milliseconds(0)); } // killed or abandoned: no grace
};

using process_actor = caf::stateful_actor<process_state>;

caf::behavior process_fn(process_actor* self, worker_spec spec, process_endpoint ep) {
  auto& st = self->state;
  st.label = spec.name();
  st.shutdown = std::chrono::milliseconds(spec.model->restart.shutdown_ms);
  std::vector<std::string> args{ep.executable, "worker",
                                "--config", ep.config_path,
                                "--model", spec.model->name,
                                "--device", spec.device,
                                "--instance", std::to_string(spec.instance),
                                "--connect", std::to_string(ep.port),
                                "--parent", std::to_string(::getpid())};
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, token_variable, std::strlen(token_variable)) != 0)
      env_strings.emplace_back(*e);
  env_strings.push_back(std::string(token_variable) + "=" + ep.token);
  std::vector<char*> envp;
  for (auto& e : env_strings)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  // The node blocks SIGTERM/SIGINT in all its threads (one thread waits for them); the child
  // must not inherit that mask, or it would ignore the SIGTERM that stops it.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, ep.executable.c_str(), nullptr, &attr, argv.data(), envp.data());
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    self->quit(make_error(errc::worker_failed, "cannot start the process of worker " + st.label
                                                 + ": " + std::strerror(rc)));
    return {};
  }
  st.pid = pid;
  logging::info({"supervisor", spec.model->name, 0, {}, st.label},
                "worker process {} started (pid {})", st.label, pid);
  self->set_exit_handler([self](caf::exit_msg& em) { // asked to stop: give it its grace
    auto how = self->state.stop(self->state.shutdown);
    logging::info({"supervisor", {}, 0, {}, self->state.label}, "worker process {} stopped: {}",
                  self->state.label, how);
    self->quit(em.reason);
  });
  self->send(self, tick_atom::value);
  return {
    [self](tick_atom) {
      auto& st = self->state;
      int status = 0;
      if (::waitpid(st.pid, &status, WNOHANG) == st.pid) {
        st.reaped = true;
        auto how = describe_status(status);
        logging::warn({"supervisor", {}, 0, {}, st.label}, "worker process {} (pid {}) {}",
                      st.label, st.pid, how);
        self->quit(make_error(errc::worker_failed,
                              "worker process " + st.label + " (pid " + std::to_string(st.pid)
                                + ") " + how));
        return;
      }
      self->delayed_send(self, std::chrono::milliseconds(20), tick_atom::value);
    },
  };
}

} // namespace

caf::actor spawn_worker_broker(caf::actor_system& sys, std::string token,
                               std::shared_ptr<const batcher_cells> batchers) {
  return sys.spawn([token, batchers](caf::event_based_actor*) -> caf::behavior {
    return {
      [token, batchers](register_atom, const std::string& worker,
                        const std::string& presented) -> caf::result<caf::actor> {
        if (!token.empty() && presented != token)
          return make_error(errc::invalid_input, "worker " + worker + ": wrong token");
        auto it = batchers->find(worker.substr(0, worker.find('/')));
        if (it == batchers->end())
          return make_error(errc::model_not_found, "worker " + worker + ": no such model");
        auto b = it->second->get();
        if (!b)
          return make_error(errc::not_ready, "worker " + worker + ": its batcher is not running");
        return caf::actor_cast<caf::actor>(b);
      },
    };
  });
}

caf::actor spawn_worker_process(caf::actor_system& sys, const worker_spec& spec,
                                const process_endpoint& endpoint) {
  // Detached: stopping the process waits (up to its grace) on this actor's own thread.
  return sys.spawn<caf::detached>(process_fn, spec, endpoint);
}

int run_worker_process(const std::string& config_path, const std::string& model_name,
                       const std::string& device, uint32_t instance, uint16_t port,
                       long parent_pid) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL); // the node's death ends its workers
  if (parent_pid > 0 && ::getppid() != static_cast<pid_t>(parent_pid))
    return 1; // the node died before the line above took effect
  const char* token = std::getenv(token_variable);
  auto loaded = load_deployment_here(config_path);
  if (!loaded) {
    std::fprintf(stderr, "worker: %s\n", error_message(loaded.error()).c_str());
    return 1;
  }
  auto cfg = std::make_shared<const deployment_config>(std::move(*loaded));
  auto* m = cfg->find_model(model_name);
  if (!m) {
    std::fprintf(stderr, "worker: no model '%s'\n", model_name.c_str());
    return 1;
  }
  logging::setup(cfg->server.log_level, cfg->server.log_format);
  caf::actor_system_config sys_cfg;
  sys_cfg.add_message_types<caf::id_block::actorserve>();
  sys_cfg.load<caf::io::middleman>();
  sys_cfg.set("logger.verbosity", caf::atom("quiet"));
  sys_cfg.set("scheduler.max-threads", static_cast<size_t>(2));
  caf::actor_system sys{sys_cfg};
  worker_spec spec{std::shared_ptr<const model_config>(cfg, m), device, instance,
                   cfg->server.fault_injection};
  // The same joining agent as a cluster's worker nodes, without rejoining: when the worker or
  // the node goes away, this process ends and the node starts a new one.
  auto local = cfg->server.cluster; // the node's broker for its own children: loopback, no TLS
  local.tls_certificate.clear();
  local.tls_key.clear();
  local.tls_ca.clear();
  auto agent = spawn_join_agent(sys, spec, local, "127.0.0.1:" + std::to_string(port),
                                token ? token : "", false);
  caf::scoped_actor self{sys};
  self->monitor(agent);
  int status = 0;
  self->receive([&](caf::down_msg& dm) { status = dm.reason ? 1 : 0; });
  std::fflush(stderr);
  std::_Exit(status); // a worker blocked in its backend would keep the actor system waiting
}

} // namespace actorserve
