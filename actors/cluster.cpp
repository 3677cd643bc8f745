#include "actors/cluster.hpp"

#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#if ACTORSERVE_WITH_TLS
#include <caf/openssl/all.hpp>
#endif

#include "actors/interfaces.hpp"
#include "actors/supervision.hpp"
#include "actors/worker.hpp"
#include "runtime/error.hpp"
#include "runtime/host.hpp"
#include "runtime/log.hpp"

namespace actorserve {
namespace {

struct agent_state {
  worker_spec spec;
  cluster_config cluster;
  std::string host;
  uint16_t port = 0;
  std::string token;
  bool rejoin = true; // false: give up (exit) on any failure instead of joining again
  caf::actor broker;
  batcher_actor batcher;
  caf::actor worker;
  std::chrono::milliseconds backoff{0};
  uint32_t failed_attempts = 0;
  static inline const char* name = "cluster_agent";
};

using agent_actor = caf::stateful_actor<agent_state>;

logging::fields agent_fields(agent_actor* self) {
  return {"cluster", self->state.spec.model->name, 0, {}, {}};
}

void retry_later(agent_actor* self, const std::string& why) {
  auto& st = self->state;
  if (!st.rejoin) {
    self->quit(make_error(errc::worker_failed, "worker " + st.spec.name() + ": " + why));
    return;
  }
  auto wait = st.backoff;
  st.backoff = std::min(std::chrono::milliseconds(st.cluster.reconnect_max_ms),
                        std::max(std::chrono::milliseconds(st.cluster.reconnect_initial_ms),
                                 st.backoff * 2));
  self->delayed_send(self, wait, tick_atom::value);
}

/// Connects to the front (if not connected), registers the worker and starts it.
void join(agent_actor* self) {
  auto& st = self->state;
  if (st.worker)
    return;
  if (!st.broker) {
#if ACTORSERVE_WITH_TLS
    auto b = st.cluster.tls() ? caf::openssl::remote_actor(self->system(), st.host, st.port)
                              : self->system().middleman().remote_actor(st.host, st.port);
#else
    auto b = self->system().middleman().remote_actor(st.host, st.port);
#endif
    if (!b) {
      if (st.failed_attempts++ % 10 == 0)
        logging::warn(agent_fields(self), "cannot reach front {}:{} for worker {}: {}{}", st.host,
                      st.port, st.spec.name(), error_message(b.error()),
                      st.rejoin ? "; retrying" : "");
      retry_later(self, "cannot reach its node: " + error_message(b.error()));
      return;
    }
    st.broker = *b;
    self->monitor(st.broker);
  }
  self->request(st.broker, std::chrono::seconds(5), register_atom::value, st.spec.name(),
                st.token)
    .then(
      [self](caf::actor& b) {
        auto& st = self->state;
        st.batcher = caf::actor_cast<batcher_actor>(b);
        // A batcher that stops (its model unloaded, or restarted by the front's supervisors)
        // never hears of this worker again: the worker must join the next one.
        self->monitor(st.batcher);
        st.worker = caf::actor_cast<caf::actor>(
          spawn_worker(self->system(), st.spec, st.batcher, nullptr));
        self->monitor(st.worker);
        st.backoff = std::chrono::milliseconds(st.cluster.reconnect_initial_ms);
        st.failed_attempts = 0;
        logging::info(agent_fields(self), "worker {} joined front {}:{}", st.spec.name(), st.host,
                      st.port);
      },
      [self](caf::error& e) {
        logging::warn(agent_fields(self), "front {}:{} refused worker {}: {}", self->state.host,
                      self->state.port, self->state.spec.name(), error_message(e));
        retry_later(self, "refused: " + error_message(e));
      });
}

caf::behavior agent_fn(agent_actor* self, worker_spec spec, cluster_config cluster,
                       std::string seed, std::string token, bool rejoin) {
  auto& st = self->state;
  st.spec = std::move(spec);
  st.cluster = std::move(cluster);
  st.token = std::move(token);
  st.rejoin = rejoin;
  auto colon = seed.rfind(':');
  st.host = seed.substr(0, colon);
  st.port = static_cast<uint16_t>(std::stoul(seed.substr(colon + 1)));
  st.backoff = std::chrono::milliseconds(st.cluster.reconnect_initial_ms);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    std::string why;
    if (dm.source == st.worker.address()) {
      why = "worker stopped: " + error_message(dm.reason);
      st.worker = nullptr;
    } else if (dm.source == st.broker.address()) {
      why = "lost its node " + st.host + ":" + std::to_string(st.port) + ": "
            + error_message(dm.reason);
      st.broker = nullptr;
    } else if (st.batcher && dm.source == st.batcher.address()) {
      why = "its batcher on " + st.host + ":" + std::to_string(st.port)
            + " stopped (the model was unloaded or restarted there): "
            + error_message(dm.reason);
      st.batcher = nullptr;
    } else {
      return;
    }
    // What is left of the membership goes: the next registration watches the batcher it gets,
    // and a worker that served this one's batcher is useless now.
    if (st.batcher)
      self->demonitor(st.batcher.address());
    st.batcher = nullptr;
    if (st.worker) {
      self->demonitor(st.worker);
      self->send_exit(st.worker, caf::exit_reason::user_shutdown);
      st.worker = nullptr;
    }
    logging::warn(agent_fields(self), "{}{}", why, st.rejoin ? "; joining again" : "");
    retry_later(self, why);
  });
  self->set_exit_handler([self](caf::exit_msg& em) { // leaving: drain, then stop the worker
    auto& st = self->state;
    if (!st.worker || !st.batcher) {
      self->quit(em.reason);
      return;
    }
    auto reason = em.reason;
    auto finish = [self, reason] {
      if (self->state.worker)
        self->send_exit(self->state.worker, caf::exit_reason::user_shutdown);
      self->quit(reason);
    };
    self->request(st.batcher, std::chrono::milliseconds(st.cluster.drain_timeout_ms),
                  drain_atom::value, st.worker)
      .then([finish](bool) { finish(); }, [finish](caf::error&) { finish(); });
  });
  self->send(self, tick_atom::value);
  return {[self](tick_atom) { join(self); }};
}

} // namespace

caf::actor spawn_join_agent(caf::actor_system& sys, const worker_spec& spec,
                            const cluster_config& cluster, const std::string& seed,
                            const std::string& token, bool rejoin) {
  // detached: connecting (a TLS handshake included) blocks its own thread only
  return sys.spawn<caf::detached>(agent_fn, spec, cluster, seed, token, rejoin);
}

std::string node_name(const cluster_config& cluster) {
  if (!cluster.node_name.empty())
    return cluster.node_name;
  return host_and_pid();
}

void configure_cluster(caf::actor_system_config& cfg, const cluster_config& cluster) {
  cfg.set("middleman.heartbeat-interval",
          caf::timespan{std::chrono::milliseconds(cluster.heartbeat_ms)});
  cfg.set("middleman.connection-timeout",
          caf::timespan{std::chrono::milliseconds(cluster.timeout_ms)});
#if ACTORSERVE_WITH_TLS
  if (cluster.tls()) {
    cfg.load<caf::openssl::manager>();
    cfg.set("openssl.certificate", cluster.tls_certificate);
    cfg.set("openssl.key", cluster.tls_key);
    cfg.set("openssl.cafile", cluster.tls_ca);
  }
#endif
}

bool tls_available() {
  return ACTORSERVE_WITH_TLS != 0;
}

caf::expected<uint16_t> publish_front(caf::actor_system& sys, const cluster_config& cluster,
                                      const caf::actor& broker) {
  auto addr = cluster.listen_address.c_str();
  const auto& a = cluster.listen_address;
  bool loopback = a == "localhost" || a == "::1" || a.rfind("127.", 0) == 0;
  if (!loopback && !cluster.tls() && !cluster.insecure)
    return make_error(errc::invalid_config,
                      "refusing to open the cluster port on " + a + " without TLS: CAF's binary "
                      "protocol trusts what arrives on it, so anyone who can connect could take "
                      "batches or end this node. Set server.cluster.tls (certificate, key and CA "
                      "on every node), or \"insecure\": true on a network only your nodes reach");
  if (!loopback && !cluster.tls())
    logging::warn({"cluster"},
                  "the cluster port {}:{} is open beyond this host without TLS (insecure): CAF's "
                  "binary protocol trusts what arrives on it, and a malformed message from anyone "
                  "who can connect can end this node. Keep the port on a private network, or set "
                  "server.cluster.tls",
                  a, cluster.listen_port);
#if ACTORSERVE_WITH_TLS
  if (cluster.tls())
    return caf::openssl::publish(broker, cluster.listen_port, addr, true);
#endif
  return sys.middleman().publish(broker, cluster.listen_port, addr, true);
}

caf::actor spawn_worker_node(caf::actor_system& sys, std::shared_ptr<const deployment_config> cfg) {
  const auto& cl = cfg->server.cluster;
  auto name = node_name(cl);
  supervisor_spec root;
  root.name = "worker node " + name;
  root.strategy = restart_strategy::one_for_one;
  root.intensity = cfg->server.supervision.restart;
  for (auto& seed : cl.seeds)
    for (auto& m : cfg->models) {
      auto model = std::shared_ptr<const model_config>(cfg, &m);
      // (A worker node runs a model's initial instances: in a cluster, capacity grows by worker
      // nodes, which an orchestrator adds on the front's actorserve_desired_instances.)
      auto slots = m.instance_slots();
      slots.resize(m.initial_instances());
      for (auto& [device, i] : slots) {
        worker_spec spec{model, device, i, cfg->server.fault_injection, name};
        child_spec c;
        c.id = seed + " " + spec.name();
        c.shutdown = std::chrono::milliseconds(cl.drain_timeout_ms) + std::chrono::seconds(1);
        c.start = [spec, cl, seed](caf::actor_system& s, const caf::actor&) {
          return spawn_join_agent(s, spec, cl, seed, "", true);
        };
        root.children.push_back(std::move(c));
      }
    }
  logging::info({"cluster"}, "worker node {}: {} worker(s) for {} front(s)", name,
                root.children.size(), cl.seeds.size());
  return spawn_supervisor_tree(sys, std::move(root));
}

} // namespace actorserve
