#include "actors/gateway.hpp"

#include <unordered_map>

#include <caf/all.hpp>

#include "runtime/batch_assembly.hpp"
#include "runtime/error.hpp"
#include "runtime/log.hpp"

namespace actorserve {
namespace {

struct model_entry {
  const model_config* config = nullptr;
  batcher_actor batcher;
  model_status status;
};

struct gateway_state {
  std::shared_ptr<const deployment_config> cfg;
  std::unordered_map<std::string, model_entry> models;
  request_id next_id = 1;
  static inline const char* name = "gateway";
};

using gateway_ptr = gateway_actor::stateful_pointer<gateway_state>;

gateway_actor::behavior_type gateway_fn(gateway_ptr self,
                                        std::shared_ptr<const deployment_config> cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  for (auto& m : st.cfg->models) {
    model_entry e;
    e.config = &m;
    e.status.model = m.name;
    st.models.emplace(m.name, std::move(e));
  }
  return {
    [self](infer_atom, infer_request& req) -> caf::result<infer_response> {
      auto& st = self->state;
      auto it = st.models.find(req.model);
      if (it == st.models.end())
        return make_error(errc::model_not_found, "unknown model '" + req.model + "'");
      auto& entry = it->second;
      auto& m = *entry.config;
      if (!req.version.empty() && req.version != m.version)
        return make_error(errc::model_not_found, "model '" + m.name + "' has no version '"
                                                   + req.version + "' (it serves version '"
                                                   + m.version + "')");
      if (!entry.batcher)
        return make_error(errc::not_ready, "model '" + m.name + "' is not ready yet");
      if (auto err = validate_request(m, req))
        return err;
      if (!req.fault.empty() && !st.cfg->server.fault_injection)
        return make_error(errc::invalid_input, "request parameter 'actorserve_fault' is only "
                                               "accepted when server.fault_injection is enabled");
      int64_t timeout_us = static_cast<int64_t>(m.default_timeout_us);
      if (req.timeout_us >= 0) {
        if (req.timeout_us == 0 || static_cast<uint64_t>(req.timeout_us) > m.max_timeout_us)
          return make_error(errc::invalid_input,
                            "parameter 'timeout' must be between 1 and "
                              + std::to_string(m.max_timeout_us) + " microseconds (max_timeout_us "
                              "of model '" + m.name + "'), got " + std::to_string(req.timeout_us));
        timeout_us = req.timeout_us;
      }
      req.id = st.next_id++;
      req.deadline_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          self->clock().now().time_since_epoch()).count()
                        + timeout_us * 1000;
      self->delegate(entry.batcher, infer_atom::value, std::move(req));
      return caf::delegated<infer_response>{};
    },
    [self](ready_atom) -> bool {
      for (auto& kv : self->state.models)
        if (kv.second.status.ready_workers == 0)
          return false;
      return true;
    },
    [self](ready_atom, const std::string& model,
           const std::string& version) -> caf::result<bool> {
      auto& st = self->state;
      auto it = st.models.find(model);
      if (it == st.models.end())
        return make_error(errc::model_not_found, "unknown model '" + model + "'");
      if (!version.empty() && version != it->second.config->version)
        return make_error(errc::model_not_found, "model '" + model + "' has no version '"
                                                   + version + "' (it serves version '"
                                                   + it->second.config->version + "')");
      return it->second.status.ready_workers > 0;
    },
    [self](status_atom, const std::string& model) -> caf::result<model_status> {
      auto& st = self->state;
      auto it = st.models.find(model);
      if (it == st.models.end())
        return make_error(errc::model_not_found, "unknown model '" + model + "'");
      return it->second.status;
    },
    [self](fault_atom, const std::string& model, fault_spec& spec) -> caf::result<std::string> {
      auto& st = self->state;
      if (!st.cfg->server.fault_injection)
        return make_error(errc::model_not_found, "fault injection is disabled "
                                                 "(server.fault_injection)");
      auto it = st.models.find(model);
      if (it == st.models.end())
        return make_error(errc::model_not_found, "unknown model '" + model + "'");
      if (!it->second.batcher)
        return make_error(errc::not_ready, "model '" + model + "' is not ready yet");
      self->delegate(it->second.batcher, fault_atom::value, std::move(spec));
      return caf::delegated<std::string>{};
    },
    [self](register_atom, const std::string& model, batcher_actor& b) {
      auto it = self->state.models.find(model);
      if (it != self->state.models.end())
        it->second.batcher = std::move(b);
    },
    [self](status_atom, model_status& s) {
      auto it = self->state.models.find(s.model);
      if (it == self->state.models.end())
        return;
      bool was_ready = it->second.status.ready_workers > 0;
      it->second.status = std::move(s);
      bool ready = it->second.status.ready_workers > 0;
      if (was_ready != ready)
        logging::info({"gateway", it->first}, "model is {}", ready ? "ready" : "NOT ready");
    },
  };
}

} // namespace

gateway_actor spawn_gateway(caf::actor_system& sys, std::shared_ptr<const deployment_config> cfg) {
  return sys.spawn(gateway_fn, std::move(cfg));
}

} // namespace actorserve
