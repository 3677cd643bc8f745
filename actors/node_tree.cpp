#include "actors/node_tree.hpp"

#include <caf/all.hpp>

#include "actors/batcher.hpp"
#include "actors/cluster.hpp"
#include "actors/gateway.hpp"
#include "actors/model_directory.hpp"
#include "actors/supervision.hpp"
#include "actors/worker.hpp"
#include "actors/worker_process.hpp"
#include "runtime/error.hpp"
#include "runtime/log.hpp"

#include <unistd.h>

#include <random>

#include <caf/io/middleman.hpp>

namespace actorserve {
namespace {

/// Everything the model's children share: the current batcher and workers supervisor.
struct model_cells {
  std::shared_ptr<handle_cell<batcher_actor>> batcher = std::make_shared<handle_cell<batcher_actor>>();
  std::shared_ptr<handle_cell<caf::actor>> workers = std::make_shared<handle_cell<caf::actor>>();
};

child_spec worker_child(const worker_spec& spec, const model_cells& cells,
                        std::shared_ptr<metrics> stats,
                        std::shared_ptr<const process_endpoint> isolation) {
  auto name = spec.name();
  auto* wm = stats && stats->model(spec.model->name) ? stats->model(spec.model->name)->worker(name)
                                                     : nullptr;
  child_spec c;
  c.id = name;
  c.shutdown = std::chrono::milliseconds(spec.model->restart.shutdown_ms);
  c.start = [spec, cells, stats, name, wm, isolation](caf::actor_system& sys, const caf::actor&) {
    auto batcher = cells.batcher->get();
    caf::anon_send(batcher, worker_starting_atom::value, name);
    if (wm)
      wm->set_phase(worker_phase::starting);
    if (spec.model->isolation == isolation_mode::process) // a child process; the actor stands for it
      return spawn_worker_process(sys, spec, *isolation);
    return caf::actor_cast<caf::actor>(spawn_worker(sys, spec, batcher, stats));
  };
  c.on_down = [cells, name, wm](bool will_restart, const std::string&) {
    auto batcher = cells.batcher->get();
    if (will_restart) {
      caf::anon_send(batcher, worker_starting_atom::value, name); // requests wait for it
      if (wm) {
        wm->set_phase(worker_phase::restarting);
        wm->restarts.fetch_add(1, std::memory_order_relaxed);
      }
    } else {
      caf::anon_send(batcher, given_up_atom::value, name); // requests fail fast
      if (wm)
        wm->set_phase(worker_phase::given_up);
    }
  };
  return c;
}

supervisor_spec workers_spec(const std::shared_ptr<const deployment_config>& cfg,
                             std::shared_ptr<const model_config> model, const model_cells& cells,
                             std::shared_ptr<metrics> stats,
                             std::shared_ptr<const process_endpoint> isolation) {
  supervisor_spec s;
  s.name = "workers " + model->name;
  s.strategy = model->restart.strategy;
  s.intensity = model->restart;
  if (cfg->server.cluster.role == cluster_role::front)
    return s; // its workers are remote: worker nodes join the cluster port
  auto slots = model->instance_slots();
  auto initial = model->initial_instances();
  for (std::size_t k = 0; k < slots.size(); ++k) {
    auto& [device, i] = slots[k];
    s.children.push_back(
      worker_child(worker_spec{model, device, i, cfg->server.fault_injection}, cells, stats,
                   isolation));
    s.children.back().start_held = k >= initial; // (the autoscaler starts it when wanted)
  }
  return s;
}

supervisor_spec model_spec(const std::shared_ptr<const deployment_config>& cfg,
                           std::shared_ptr<const model_config> model,
                           std::shared_ptr<model_directory> directory,
                           std::shared_ptr<metrics> stats, model_cells cells,
                           std::shared_ptr<const process_endpoint> isolation) {
  supervisor_spec s;
  s.name = "model " + model->name;
  s.strategy = restart_strategy::rest_for_one; // workers talk to the batcher started before them
  s.intensity = model->restart;
  s.intensity.max_restarts = model->model_max_restarts;
  auto stop_time = std::chrono::milliseconds(model->restart.shutdown_ms);
  child_spec batcher;
  batcher.id = "batcher";
  batcher.shutdown = stop_time;
  bool local = cfg->server.cluster.role != cluster_role::front; // (a front's come from workers)
  batcher.start = [model, directory, stats, cells, local](caf::actor_system& sys,
                                                          const caf::actor&) {
    auto b = spawn_batcher(sys, model, directory, stats, cells.workers, local);
    cells.batcher->set(b);
    return caf::actor_cast<caf::actor>(b);
  };
  child_spec workers;
  workers.id = "workers";
  workers.shutdown = stop_time * 2; // its own children stop within stop_time each, in turn
  workers.start = [cfg, model, cells, stats, isolation](caf::actor_system& sys,
                                                       const caf::actor&) {
    auto w = spawn_supervisor_tree(sys, workers_spec(cfg, model, cells, stats, isolation));
    cells.workers->set(w);
    return w;
  };
  s.children = {std::move(batcher), std::move(workers)};
  return s;
}

/// Publishes the worker broker on loopback when some model isolates its workers.
caf::expected<std::shared_ptr<const process_endpoint>>
start_isolation(caf::actor_system& sys, const deployment_config& cfg,
                std::shared_ptr<const batcher_cells> batchers, caf::actor& broker) {
  bool any = std::any_of(cfg.models.begin(), cfg.models.end(),
                         [](const model_config& m) { return m.isolation == isolation_mode::process; });
  if (!any)
    return std::shared_ptr<const process_endpoint>{};
  if (cfg.source.empty())
    return make_error(errc::invalid_config, "isolation \"process\" needs the deployment loaded "
                                            "from a file (its workers load it too)");
  auto ep = std::make_shared<process_endpoint>();
  char exe[4096];
  auto n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0)
    return make_error(errc::internal, "cannot find the actorserve executable (/proc/self/exe)");
  ep->executable.assign(exe, static_cast<std::size_t>(n));
  ep->config_path = cfg.source;
  std::random_device rd;
  for (int i = 0; i < 4; ++i)
    ep->token += std::to_string(rd());
  broker = spawn_worker_broker(sys, ep->token, std::move(batchers), ep->segments);
  auto port = sys.middleman().publish(broker, 0, "127.0.0.1", true);
  if (!port) {
    caf::anon_send_exit(broker, caf::exit_reason::user_shutdown);
    return make_error(errc::internal, "cannot publish the worker broker on 127.0.0.1: "
                                        + error_message(port.error()));
  }
  ep->port = *port;
  logging::info({"supervisor"}, "worker broker for isolated workers on 127.0.0.1:{}", *port);
  return std::shared_ptr<const process_endpoint>(ep);
}

/// The root's child for model `m`: its supervisor tree, which the root leaves stopped when it
/// gives up (server.supervision.model_restart) and starts again after a crash-loop back-off.
child_spec model_child(const std::shared_ptr<const deployment_config>& cfg, const model_config& m,
                       std::shared_ptr<model_directory> directory, std::shared_ptr<metrics> stats,
                       const model_cells& cells, std::shared_ptr<const process_endpoint> isolation) {
  const auto& sv = cfg->server.supervision;
  auto model = std::shared_ptr<const model_config>(cfg, &m); // shares the config's lifetime
  child_spec c;
  c.id = "model " + m.name;
  c.restart = sv.model_restart;
  c.shutdown = std::chrono::milliseconds(m.restart.shutdown_ms) * 4;
  auto* mm = stats ? stats->model(m.name) : nullptr;
  c.start = [cfg, model, directory, stats, mm, mc = cells,
             iso = isolation](caf::actor_system& sys, const caf::actor&) {
    directory->set_cooldown(model->name, std::nullopt); // (over, or cut short by a load)
    if (mm)
      mm->crash_loop.store(0, std::memory_order_relaxed);
    return spawn_supervisor_tree(sys, model_spec(cfg, model, directory, stats, mc, iso));
  };
  c.on_down = [name = m.name, mm](bool will_restart, const std::string& why) {
    if (will_restart)
      return;
    logging::critical({"supervisor", name}, "model '{}' is no longer served: {}", name, why);
    if (mm)
      mm->give_ups.fetch_add(1, std::memory_order_relaxed);
  };
  // Crash-loop back-off: a model the root leaves stopped is started again after a cool-down.
  c.cooldown = std::chrono::milliseconds(sv.model_cooldown_ms);
  c.cooldown_max = std::chrono::milliseconds(sv.model_cooldown_max_ms);
  c.on_cooldown = [name = m.name, directory, mm](std::chrono::milliseconds wait, uint32_t in_a_row,
                                                 const std::string& why) {
    logging::critical({"supervisor", name},
                      "model '{}' is no longer served: {}; it is started again in {:.1f} s "
                      "(crash-loop back-off, give-up {} in a row)",
                      name, why, std::chrono::duration<double>(wait).count(), in_a_row);
    directory->set_cooldown(name, model_directory::cooldown{
                                    why, std::chrono::steady_clock::now() + wait, in_a_row});
    if (mm) {
      mm->give_ups.fetch_add(1, std::memory_order_relaxed);
      mm->crash_loop.store(1, std::memory_order_relaxed);
    }
  };
  return c;
}

} // namespace

caf::expected<node_handles> spawn_node(caf::actor_system& sys,
                                       std::shared_ptr<const deployment_config> cfg,
                                       std::shared_ptr<metrics> stats) {
  node_handles out;
  out.gateway = std::make_shared<handle_cell<gateway_actor>>();
  auto directory = std::make_shared<model_directory>(*cfg);
  out.directory = directory;
  std::map<std::string, model_cells> cells; // one set per model for the node's lifetime
  auto batchers = std::make_shared<batcher_cells>(); // what the brokers hand out
  for (auto& m : cfg->models) {
    if (m.is_pipeline())
      continue; // (its steps' models run it)
    cells[m.name] = model_cells{};
    (*batchers)[m.name] = cells[m.name].batcher;
  }
  caf::actor iso_broker;
  auto isolation = start_isolation(sys, *cfg, batchers, iso_broker);
  if (!isolation)
    return isolation.error();
  if (iso_broker)
    out.brokers.push_back(iso_broker);
  const auto& cl = cfg->server.cluster;
  if (cl.listen_port != 0) { // worker nodes join here
    auto broker = spawn_worker_broker(sys, "", batchers);
    out.brokers.push_back(broker);
    auto port = publish_front(sys, cl, broker);
    if (!port) {
      for (auto& b : out.brokers)
        caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
      return make_error(errc::invalid_config,
                        "cannot accept worker nodes on " + cl.listen_address + ":"
                          + std::to_string(cl.listen_port) + ": " + error_message(port.error()));
    }
    logging::info({"cluster"}, "front node {}: worker nodes join on {}:{} ({})", node_name(cl),
                  cl.listen_address, *port, cl.tls() ? "TLS, peers signed by the configured CA"
                                                     : "no TLS");
  }
  const auto& sv = cfg->server.supervision;
  supervisor_spec root;
  root.name = "root";
  root.strategy = sv.restart.strategy;
  root.intensity = sv.restart;
  child_spec gateway;
  gateway.id = "gateway";
  gateway.shutdown = std::chrono::milliseconds(sv.restart.shutdown_ms);
  gateway.start = [cfg, directory, cell = out.gateway](caf::actor_system& sys,
                                                       const caf::actor& root) {
    auto g = spawn_gateway(sys, cfg, directory, root);
    cell->set(g);
    return caf::actor_cast<caf::actor>(g);
  };
  root.children.push_back(std::move(gateway));
  for (auto& m : cfg->models) {
    if (m.is_pipeline())
      continue;
    root.children.push_back(
      model_child(cfg, m, directory, stats, cells[m.name], *isolation));
  }
  out.root = spawn_supervisor_tree(sys, std::move(root));
  return out;
}

} // namespace actorserve
