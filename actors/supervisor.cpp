#include "actors/supervisor.hpp"

#include <unordered_map>

#include <caf/all.hpp>

#include "actors/batcher.hpp"
#include "actors/gateway.hpp"
#include "actors/worker.hpp"
#include "runtime/error.hpp"
#include "runtime/log.hpp"
#include "runtime/restart_policy.hpp"

namespace actorserve {
namespace {

/// One worker position in the tree: what to spawn, and its restart history.
struct worker_slot {
  worker_spec spec;
  batcher_actor batcher;
  restart_tracker restarts;
  worker_actor current;
  bool given_up = false;
};

struct supervisor_state {
  std::shared_ptr<const deployment_config> cfg;
  gateway_actor gateway;
  std::vector<batcher_actor> batchers;
  std::vector<worker_slot> slots;
  std::unordered_map<caf::actor_addr, uint32_t> slot_of; // live worker -> slot
  bool shutting_down = false;
  std::shared_ptr<metrics> stats;
  static inline const char* name = "supervisor";
};

using supervisor_ptr = supervisor_actor::stateful_pointer<supervisor_state>;

worker_metrics* metrics_of(supervisor_ptr self, const worker_slot& slot) {
  auto& stats = self->state.stats;
  auto* mm = stats ? stats->model(slot.spec.model->name) : nullptr;
  return mm ? mm->worker(slot.spec.name()) : nullptr;
}

void start_worker(supervisor_ptr self, uint32_t index) {
  auto& slot = self->state.slots[index];
  self->send(slot.batcher, worker_starting_atom::value, slot.spec.name());
  if (auto* wm = metrics_of(self, slot))
    wm->set_phase(worker_phase::starting);
  slot.current = spawn_worker(self->system(), slot.spec, slot.batcher, self->state.stats);
  self->monitor(slot.current);
  self->state.slot_of[slot.current.address()] = index;
}

/// A worker died or hung: restart it after its backoff, or give it up past its restart limit.
void on_worker_failure(supervisor_ptr self, uint32_t index, const std::string& reason) {
  auto& slot = self->state.slots[index];
  auto name = slot.spec.name();
  auto* wm = metrics_of(self, slot);
  auto delay = slot.restarts.on_failure(self->clock().now());
  if (!delay) {
    slot.given_up = true;
    if (wm)
      wm->set_phase(worker_phase::given_up);
    logging::critical({"supervisor", slot.spec.model->name, 0, {}, name},
                      "giving up on worker {}: it failed {} times within {} s "
                      "(restart.max_restarts {}); last reason: {}",
                      name, slot.spec.model->restart.max_restarts + 1,
                      slot.spec.model->restart.period_s, slot.spec.model->restart.max_restarts,
                      reason);
    self->send(slot.batcher, given_up_atom::value, name);
    return;
  }
  logging::warn({"supervisor", slot.spec.model->name, 0, {}, name},
                "worker {} died ({}); restarting in {} ms", name, reason, delay->count());
  if (wm) {
    wm->set_phase(worker_phase::restarting);
    wm->restarts.fetch_add(1, std::memory_order_relaxed);
  }
  self->send(slot.batcher, worker_starting_atom::value, name);
  self->delayed_send(self, *delay, restart_atom::value, index);
}

supervisor_actor::behavior_type supervisor_fn(supervisor_ptr self,
                                              std::shared_ptr<const deployment_config> cfg,
                                              std::shared_ptr<metrics> stats) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.stats = std::move(stats);
  st.gateway = spawn_gateway(self->system(), st.cfg);
  self->link_to(st.gateway);
  for (auto& m : st.cfg->models) {
    auto model = std::shared_ptr<const model_config>(st.cfg, &m); // shares the config's lifetime
    auto b = spawn_batcher(self->system(), model, st.gateway, st.stats,
                           caf::actor_cast<caf::actor>(self));
    self->link_to(b);
    st.batchers.push_back(b);
    self->send(st.gateway, register_atom::value, m.name, b);
    for (auto& device : m.devices)
      for (uint32_t i = 0; i < m.instances; ++i) {
        worker_spec spec{model, device, i, st.cfg->server.fault_injection};
        st.slots.push_back(worker_slot{spec, b, restart_tracker{m.restart}, {}, false});
      }
  }
  for (uint32_t i = 0; i < st.slots.size(); ++i)
    start_worker(self, i);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    auto it = st.slot_of.find(dm.source);
    if (it == st.slot_of.end())
      return; // not a worker, or one already replaced (a hung worker whose call returned)
    auto index = it->second;
    st.slot_of.erase(it);
    st.slots[index].current = nullptr;
    if (st.shutting_down || dm.reason == caf::exit_reason::user_shutdown) {
      if (auto* wm = metrics_of(self, st.slots[index]))
        wm->set_phase(worker_phase::stopped);
      return;
    }
    on_worker_failure(self, index, error_message(dm.reason));
  });
  self->set_exit_handler([self](caf::exit_msg& em) {
    // A linked gateway or batcher died, or we are told to stop: stop the whole tree.
    if (em.reason != caf::exit_reason::user_shutdown)
      logging::critical({"supervisor"}, "a core actor exited: {}", error_message(em.reason));
    self->state.shutting_down = true;
    for (auto& s : self->state.slots)
      if (s.current)
        self->send_exit(s.current, caf::exit_reason::user_shutdown);
    self->quit(em.reason);
  });
  return {
    [self](gateway_atom) { return self->state.gateway; },
    [self](worker_hung_atom, const std::string& name) {
      // A blocked backend call cannot be cancelled: the hung worker's thread is abandoned (it
      // ends when the call returns, if ever) and a replacement starts under the restart policy.
      auto& st = self->state;
      for (uint32_t i = 0; i < st.slots.size(); ++i) {
        auto& slot = st.slots[i];
        if (slot.spec.name() != name || !slot.current)
          continue;
        st.slot_of.erase(slot.current.address());
        self->demonitor(slot.current.address());
        self->send_exit(slot.current, caf::exit_reason::kill);
        slot.current = nullptr;
        on_worker_failure(self, i, "hung: a batch outlived execution_timeout_ms");
      }
    },
    [self](restart_atom, uint32_t index) {
      auto& st = self->state;
      if (st.shutting_down || index >= st.slots.size() || st.slots[index].current)
        return;
      logging::info({"supervisor", st.slots[index].spec.model->name, 0, {},
                     st.slots[index].spec.name()},
                    "restarting worker {}", st.slots[index].spec.name());
      start_worker(self, index);
    },
  };
}

} // namespace

supervisor_actor spawn_supervisor(caf::actor_system& sys,
                                  std::shared_ptr<const deployment_config> cfg,
                                  std::shared_ptr<metrics> stats) {
  return sys.spawn(supervisor_fn, std::move(cfg), std::move(stats));
}

} // namespace actorserve
