#include "actors/worker_process.hpp"

#include "actors/cluster.hpp"

#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <thread>
#include <unordered_map>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "runtime/batch_assembly.hpp"
#include "runtime/error.hpp"
#include "runtime/log.hpp"
#include "runtime/tracing.hpp"
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

/// The descriptor number the child finds its shared memory at (see process_fn).
int child_shm_fd(int parent_fd) {
  return parent_fd == 3 ? 4 : 3;
}

// The relay between a batcher and an isolated worker with shared memory (spawn_worker_broker).
struct relay_state {
  caf::actor batcher;
  caf::actor worker; // in the child, once it is ready
  std::shared_ptr<shared_segment> memory;
  struct region {
    std::size_t offset;
    int64_t copy_ns; // staging it here is part of assembling the batch's input
    std::chrono::steady_clock::time_point sent; // to the worker
  };
  std::unordered_map<uint64_t, region> regions; // by batch
  std::string label;
  bool said_too_small = false;
  static inline const char* name = "worker_relay";

  /// Moves the job's input bytes into the shared memory (input by input, each input's requests
  /// back to back, copied by several threads when large) and records where in its spans. Leaves
  /// the job as it is when they do not fit.
  void stage(batch_job& job) {
    std::size_t total = 0, inputs = job.requests.empty() ? 0 : job.requests.front().inputs.size();
    for (auto& r : job.requests) {
      if (r.inputs.size() != inputs)
        return; // (the gateway makes them equal; the worker reports it if not)
      for (auto& t : r.inputs)
        total += t.data.size();
    }
    auto at = total > 0 ? memory->allocate(total) : std::nullopt;
    if (!at) {
      if (total > 0 && !said_too_small) {
        said_too_small = true;
        logging::warn({"relay", {}, 0, {}, label},
                      "a batch of {} input bytes does not fit worker {}'s shared memory ({} of {} "
                      "bytes in use): it goes over the connection, as will others that do not fit "
                      "(isolation_shm_bytes)", total, label, memory->in_use(), memory->size());
      }
      return;
    }
    release(job.batch_id);
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::size_t> start(inputs);
    std::size_t offset = *at;
    for (std::size_t i = 0; i < inputs; ++i) {
      batch_input in;
      for (auto& r : job.requests)
        in.parts.push_back(&r.inputs[i]);
      in.copy_to(memory->data() + offset, 4);
      start[i] = offset;
      offset += in.bytes();
    }
    job.shm_spans.reserve(2 * inputs * job.requests.size());
    for (auto& r : job.requests)
      for (std::size_t i = 0; i < inputs; ++i) {
        auto n = r.inputs[i].data.size();
        job.shm_spans.push_back(start[i]);
        job.shm_spans.push_back(n);
        start[i] += n;
        r.inputs[i].data = {};
      }
    auto now = std::chrono::steady_clock::now();
    regions[job.batch_id] = {*at, std::chrono::duration_cast<std::chrono::nanoseconds>(now - t0).count(),
                             now};
  }

  /// Frees the batch's region. Returns what reaching the worker cost it beyond the worker's own
  /// staging: the copy here, plus one way over the connection (half the round trip less the
  /// worker's own time, `compute_ns`); 0 for a batch that did not go through shared memory.
  int64_t release(uint64_t batch, int64_t compute_ns = 0) {
    auto it = regions.find(batch);
    if (it == regions.end())
      return 0;
    memory->release(it->second.offset);
    auto round_trip = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now() - it->second.sent).count();
    auto ns = it->second.copy_ns + std::max<int64_t>(round_trip - compute_ns, 0) / 2;
    regions.erase(it);
    return ns;
  }

  ~relay_state() {
    for (auto& kv : regions)
      memory->release(kv.second.offset);
  }
};

using relay_actor = caf::stateful_actor<relay_state>;

caf::behavior relay_fn(relay_actor* self, caf::actor batcher, std::shared_ptr<shared_segment> memory,
                       caf::actor agent, std::string label) {
  auto& st = self->state;
  st.batcher = std::move(batcher);
  st.memory = std::move(memory);
  st.label = std::move(label);
  // It lives as long as the worker process's side: its joining agent, then its worker.
  self->monitor(agent);
  self->monitor(st.batcher);
  self->set_down_handler([self](caf::down_msg& dm) { self->quit(dm.reason); });
  return {
    [self](worker_ready_atom, caf::actor& worker, std::string& name, uint32_t capacity) {
      auto& st = self->state;
      st.worker = worker;
      self->monitor(worker);
      logging::info({"relay", {}, 0, {}, name}, "worker {} takes its batches' inputs through "
                                                "{} bytes of shared memory", name, st.memory->size());
      self->send(st.batcher, worker_ready_atom::value, caf::actor_cast<caf::actor>(self),
                 std::move(name), capacity);
    },
    [self](execute_atom, batch_job& job) {
      auto& st = self->state;
      st.stage(job);
      self->send(st.worker, execute_atom::value, std::move(job));
    },
    [self](batch_done_atom, batch_outputs& out) {
      // The batcher learns staging times from input_ns (when to hand a busy worker its next
      // batch): the copy here is part of them.
      auto ns = self->state.release(out.batch_id, out.compute_ns);
      out.input_ns += ns;
      out.compute_ns += ns;
      self->send(self->state.batcher, batch_done_atom::value, std::move(out));
    },
    [self](batch_failed_atom, uint64_t batch, caf::error& err) {
      self->state.release(batch);
      self->send(self->state.batcher, batch_failed_atom::value, batch, std::move(err));
    },
    [self](fault_atom, fault_spec& spec) {
      self->send(self->state.worker, fault_atom::value, std::move(spec));
    },
    [self](drain_atom, caf::actor&) { // the worker leaving: the batcher knows it as this relay
      return self->delegate(self->state.batcher, drain_atom::value,
                            caf::actor_cast<caf::actor>(self));
    },
  };
}

struct process_state {
  pid_t pid = -1;
  bool reaped = false;
  std::string label;
  std::chrono::milliseconds shutdown{5000};
  std::shared_ptr<segment_registry> segments; // where its shared memory is registered, if any
  const shared_segment* memory = nullptr;
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

  ~process_state() { // killed or abandoned: no grace
    stop(std::chrono::milliseconds(0));
    if (segments && memory)
      segments->erase(label, memory);
  }
};

using process_actor = caf::stateful_actor<process_state>;

/// Shared memory for an isolated worker's batch inputs (the child inherits the descriptor),
/// and the arguments that tell it; none (its batches go over its connection) where it cannot be
/// made.
std::shared_ptr<shared_segment> batch_memory(const worker_spec& spec, const std::string& label,
                                             std::vector<std::string>& args) {
  if (spec.model->isolation_shm_bytes == 0)
    return nullptr;
  try {
    auto memory = shared_segment::create(spec.model->isolation_shm_bytes);
    args.insert(args.end(), {"--shm-fd", std::to_string(child_shm_fd(memory->fd())),
                             "--shm-bytes", std::to_string(memory->size())});
    return memory;
  } catch (const std::exception& e) {
    logging::warn({"supervisor", spec.model->name, 0, {}, label},
                  "no shared memory for worker {} ({}): its batches go over its connection", label,
                  e.what());
    return nullptr;
  }
}

/// The node's environment, with the worker's token in place of any inherited one.
std::vector<std::string> child_environment(const std::string& token) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, token_variable, std::strlen(token_variable)) != 0)
      env.emplace_back(*e);
  env.push_back(std::string(token_variable) + "=" + token);
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& xs) {
  std::vector<char*> out;
  for (auto& x : xs)
    out.push_back(x.data());
  out.push_back(nullptr);
  return out;
}

/// Starts the worker process; its pid, or the errno of the failure (negative).
pid_t spawn_child(const std::string& executable, std::vector<std::string> args,
                  std::vector<std::string> env, const shared_segment* memory) {
  auto argv = c_strings(args);
  auto envp = c_strings(env);
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
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  if (memory)
    posix_spawn_file_actions_adddup2(&files, memory->fd(), child_shm_fd(memory->fd()));
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, executable.c_str(), &files, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&files);
  posix_spawnattr_destroy(&attr);
  return rc == 0 ? pid : -rc;
}

/// Polls the child: once it exits, so does this actor, saying how it ended.
void watch_child(process_actor* self) {
  auto& st = self->state;
  int status = 0;
  if (::waitpid(st.pid, &status, WNOHANG) == st.pid) {
    st.reaped = true;
    auto how = describe_status(status);
    logging::warn({"supervisor", {}, 0, {}, st.label}, "worker process {} (pid {}) {}", st.label,
                  st.pid, how);
    self->quit(make_error(errc::worker_failed, "worker process " + st.label + " (pid "
                                                 + std::to_string(st.pid) + ") " + how));
    return;
  }
  self->delayed_send(self, std::chrono::milliseconds(20), tick_atom::value);
}

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
  auto memory = batch_memory(spec, st.label, args);
  auto pid = spawn_child(ep.executable, std::move(args), child_environment(ep.token), memory.get());
  if (pid < 0) {
    self->quit(make_error(errc::worker_failed, "cannot start the process of worker " + st.label
                                                 + ": " + std::strerror(-pid)));
    return {};
  }
  st.pid = pid;
  if (memory) { // the broker hands it to the relay it makes when the child registers
    st.segments = ep.segments;
    st.memory = memory.get();
    ep.segments->put(st.label, std::move(memory));
  }
  logging::info({"supervisor", spec.model->name, 0, {}, st.label},
                "worker process {} started (pid {})", st.label, pid);
  self->set_exit_handler([self](caf::exit_msg& em) { // asked to stop: give it its grace
    auto how = self->state.stop(self->state.shutdown);
    logging::info({"supervisor", {}, 0, {}, self->state.label}, "worker process {} stopped: {}",
                  self->state.label, how);
    self->quit(em.reason);
  });
  self->send(self, tick_atom::value);
  return {[self](tick_atom) { watch_child(self); }};
}

} // namespace

void segment_registry::put(const std::string& worker, std::shared_ptr<shared_segment> segment) {
  std::lock_guard<std::mutex> guard{mtx_};
  segments_[worker] = std::move(segment);
}

void segment_registry::erase(const std::string& worker, const shared_segment* segment) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto it = segments_.find(worker); it != segments_.end() && it->second.get() == segment)
    segments_.erase(it);
}

std::shared_ptr<shared_segment> segment_registry::find(const std::string& worker) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto it = segments_.find(worker);
  return it == segments_.end() ? nullptr : it->second;
}

caf::actor spawn_worker_broker(caf::actor_system& sys, std::string token,
                               std::shared_ptr<const batcher_cells> batchers,
                               std::shared_ptr<const segment_registry> segments) {
  return sys.spawn([token, batchers, segments](caf::event_based_actor* self) -> caf::behavior {
    return {
      [self, token, batchers, segments](register_atom, const std::string& worker,
                                        const std::string& presented) -> caf::result<caf::actor> {
        if (!token.empty() && presented != token)
          return make_error(errc::invalid_input, "worker " + worker + ": wrong token");
        auto it = batchers->find(worker.substr(0, worker.find('/')));
        if (it == batchers->end())
          return make_error(errc::model_not_found, "worker " + worker + ": no such model");
        auto b = it->second->get();
        if (!b)
          return make_error(errc::not_ready, "worker " + worker + ": its batcher is not running");
        if (auto memory = segments ? segments->find(worker) : nullptr)
          // Detached: it copies batches (tens of MB for large images) on its own thread.
          return caf::actor_cast<caf::actor>(self->system().spawn<caf::detached>(
            relay_fn, caf::actor_cast<caf::actor>(b), std::move(memory),
            caf::actor_cast<caf::actor>(self->current_sender()), worker));
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
                       long parent_pid, int shm_fd, std::size_t shm_bytes) {
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
  // Its compute spans are exported from here, as the node's own are from the node.
  auto traced = tracing::session::start(cfg->server.tracing);
  if (!traced) {
    std::fprintf(stderr, "worker: %s\n", error_message(traced.error()).c_str());
    return 1;
  }
  // The node's broker for its own children: loopback, no TLS, the cluster's heartbeats. The node
  // drops a connection silent for timeout_ms; without heartbeats from this side an idle worker's
  // link was dropped after that long (its process then ended and was restarted, again and again,
  // until the supervisors gave up).
  auto local = cfg->server.cluster;
  local.tls_certificate.clear();
  local.tls_key.clear();
  local.tls_ca.clear();
  caf::actor_system_config sys_cfg;
  sys_cfg.add_message_types<caf::id_block::actorserve>();
  sys_cfg.load<caf::io::middleman>();
  configure_cluster(sys_cfg, local);
  sys_cfg.set("logger.verbosity", caf::atom("quiet"));
  sys_cfg.set("scheduler.max-threads", static_cast<size_t>(2));
  caf::actor_system sys{sys_cfg};
  worker_spec spec{std::shared_ptr<const model_config>(cfg, m), device, instance,
                   cfg->server.fault_injection};
  if (shm_fd >= 0) {
    try {
      spec.batch_memory = shared_segment::attach(shm_fd, shm_bytes);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "worker: %s\n", e.what());
      return 1;
    }
  }
  // The same joining agent as a cluster's worker nodes, without rejoining: when the worker or
  // the node goes away, this process ends and the node starts a new one.
  auto agent = spawn_join_agent(sys, spec, local, "127.0.0.1:" + std::to_string(port),
                                token ? token : "", false);
  caf::scoped_actor self{sys};
  self->monitor(agent);
  int status = 0;
  self->receive([&](caf::down_msg& dm) { status = dm.reason ? 1 : 0; });
  if (*traced)
    (*traced)->flush();
  std::fflush(stderr);
  std::_Exit(status); // a worker blocked in its backend would keep the actor system waiting
}

} // namespace actorserve
