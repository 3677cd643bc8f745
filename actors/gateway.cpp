#include "actors/gateway.hpp"

#include <unordered_map>

#include <caf/all.hpp>

#include "actors/pipeline.hpp"
#include "actors/request_routing.hpp"
#include "runtime/error.hpp"
#include "runtime/log.hpp"
#include "runtime/tracing.hpp"
#include "runtime/stage.hpp"

namespace actorserve {
namespace {

struct gateway_state {
  std::shared_ptr<const deployment_config> cfg;
  std::shared_ptr<model_directory> directory;
  caf::actor root; // the models' subtrees' supervisor
  // The pipelines' stage actors, by pipeline, in step order (none for a model step, or for a
  // stage that could not start: stage_failures says why).
  std::map<std::string, std::vector<stage_actor>> stages;
  std::map<const pipeline_step*, std::string> stage_failures;
  // Every stage actor it started, told to stop when the gateway stops (a stage's pending
  // request timeouts would keep it alive, and the node's shutdown waiting, otherwise).
  std::shared_ptr<std::vector<stage_actor>> started = std::make_shared<std::vector<stage_actor>>();
  static inline const char* name = "gateway";
};

using gateway_ptr = gateway_actor::stateful_pointer<gateway_state>;

/// The model a control request names: one of the deployment's, not a pipeline, with a
/// supervisor to ask.
caf::error controllable(gateway_ptr self, const std::string& model) {
  auto& st = self->state;
  auto* m = st.cfg->find_model(model);
  if (!m)
    return make_error(errc::model_not_found, "unknown model '" + model + "'");
  if (m->is_pipeline())
    return make_error(errc::invalid_input,
                      "pipeline '" + model + "' has nothing to load or unload: its steps' "
                      "models run it; load or unload those");
  if (!st.root)
    return make_error(errc::not_ready, "model control is not available on this node");
  return {};
}

/// Whether `model` (of `version`; "" = its only one) can take requests: a pipeline when all its
/// steps' models can; an error for an unknown, unloaded or crash-looping model.
caf::result<bool> model_ready(gateway_ptr self, const std::string& model,
                              const std::string& version) {
  auto& st = self->state;
  auto* m = st.cfg->find_model(model);
  if (!m)
    return make_error(errc::model_not_found, "unknown model '" + model + "'");
  if (!version.empty() && version != m->version)
    return make_error(errc::model_not_found, "model '" + model + "' has no version '"
                                               + version + "' (it serves version '"
                                               + m->version + "')");
  auto ready = [&](const std::string& name) {
    auto entry = st.directory->find(name);
    return entry && entry->batcher && entry->status.serving();
  };
  if (!m->is_pipeline()) {
    auto entry = st.directory->find(model); // (one look-up: the directory takes a lock)
    if (entry && entry->unloaded)
      return unloaded_error(model);
    bool serving = entry && entry->batcher && entry->status.serving();
    if (!serving && entry && entry->cooling_down)
      return cooldown_error(model, *entry->cooling_down);
    return serving;
  }
  auto& stages = st.stages[m->name];
  for (std::size_t j = 0; j < m->pipeline.size(); ++j) // ready when all its steps' models and
    if (m->pipeline[j].is_stage() ? !stages[j] : !ready(m->pipeline[j].model)) // stages are
      return false;
  return true;
}

/// Starts one stage step's actor, watched: a stage that stops is started again for the next
/// request. A stage that cannot start is recorded with the reason its requests are told.
void start_stage(gateway_ptr self, const model_config& pipeline, std::size_t j) {
  auto& st = self->state;
  auto& step = pipeline.pipeline[j];
  auto& slot = st.stages[pipeline.name][j];
  auto name = pipeline.name + "/" + std::to_string(j) + "/" + step.stage;
  try {
    auto* def = stage_registry::global().find(step.stage); // (config validation found it)
    if (!def)
      throw std::runtime_error("no stage '" + step.stage + "' is registered");
    stage_context ctx{name, pipeline, step,
                      stage_parameters("models." + pipeline.name + ".pipeline["
                                         + std::to_string(j) + "].parameters",
                                       step.parameters)};
    slot = def->spawn(self->system(), ctx);
    self->monitor(slot);
    st.started->push_back(slot);
    st.stage_failures.erase(&step);
  } catch (const std::exception& e) {
    slot = nullptr;
    st.stage_failures[&step] = e.what();
    logging::error({"gateway", pipeline.name}, "stage {} could not start: {}", name, e.what());
  }
}

void start_stages(gateway_ptr self) {
  for (auto& m : self->state.cfg->models) {
    self->state.stages[m.name].resize(m.pipeline.size());
    for (std::size_t j = 0; j < m.pipeline.size(); ++j)
      if (m.pipeline[j].is_stage())
        start_stage(self, m, j);
  }
}

/// A stage actor that stopped: started again (a stage's failure is its items' errors, so one
/// that stops has a bug or was killed; its requests in flight failed with it).
void stage_down(gateway_ptr self, const caf::down_msg& down) {
  for (auto& m : self->state.cfg->models)
    for (std::size_t j = 0; j < m.pipeline.size(); ++j) {
      auto& slot = self->state.stages[m.name][j];
      if (slot && slot.address() == down.source) {
        logging::warn({"gateway", m.name}, "stage {}/{}/{} stopped ({}); starting it again",
                      m.name, j, m.pipeline[j].stage, caf::to_string(down.reason));
        start_stage(self, m, j);
      }
    }
}

/// A stage of the pipeline that is not running, with the reason it could not start.
caf::error stages_missing(gateway_ptr self, const model_config& pipeline) {
  auto& st = self->state;
  auto& stages = st.stages[pipeline.name];
  for (std::size_t j = 0; j < pipeline.pipeline.size(); ++j)
    if (pipeline.pipeline[j].is_stage() && !stages[j]) {
      start_stage(self, pipeline, j); // (tried again: what failed may have been passing)
      if (stages[j])
        continue;
      auto it = st.stage_failures.find(&pipeline.pipeline[j]);
      return make_error(errc::not_ready, "pipeline '" + pipeline.name + "', step "
                                           + std::to_string(j) + " (stage '"
                                           + pipeline.pipeline[j].stage + "') is not running: "
                                           + (it != st.stage_failures.end() ? it->second : "?"));
    }
  return caf::none;
}

/// Routes a request (actors/request_routing.hpp) to its model's batcher or, for a pipeline, to
/// a run of its own.
caf::result<infer_response> route_request(gateway_ptr self, infer_request& req) {
  auto& st = self->state;
  auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                  self->clock().now().time_since_epoch()).count();
  auto t0 = std::chrono::steady_clock::now();
  auto route =
    route_inference(*st.cfg, st.cfg->find_model(req.model), *st.directory, req, now_ns);
  if (req.sampled)
    tracing::record_child(req, "gateway " + req.model, t0, std::chrono::steady_clock::now(),
                          {{"actorserve.model", req.model},
                           {"actorserve.routed", static_cast<bool>(route)}});
  if (!route)
    return std::move(route.error());
  if (route->batcher) {
    self->delegate(route->batcher, infer_atom::value, std::move(req));
    return caf::delegated<infer_response>{};
  }
  if (auto err = stages_missing(self, *route->model))
    return err;
  auto run = spawn_pipeline_run(self->system(), st.cfg, route->model, self,
                                st.stages[route->model->name]);
  self->delegate(run, infer_atom::value, std::move(req));
  return caf::delegated<infer_response>{};
}

caf::result<std::string> route_fault(gateway_ptr self, const std::string& model,
                                     fault_spec& spec) {
  auto& st = self->state;
  if (!st.cfg->server.fault_injection)
    return make_error(errc::model_not_found, "fault injection is disabled "
                                             "(server.fault_injection)");
  auto entry = st.directory->find(model);
  if (!entry)
    return make_error(errc::model_not_found, "unknown model '" + model + "'");
  if (!entry->batcher)
    return make_error(errc::not_ready, "model '" + model + "' is not ready yet");
  self->delegate(entry->batcher, fault_atom::value, std::move(spec));
  return caf::delegated<std::string>{};
}

/// A model that runs is reloaded by its batcher, one worker at a time; false: there is nothing
/// to roll (unloaded, stopped, or no worker to reload): start it instead.
caf::result<bool> reload_model(gateway_ptr self, const std::string& model) {
  if (auto err = controllable(self, model))
    return err;
  auto entry = self->state.directory->find(model);
  if (!entry || entry->unloaded || !entry->batcher)
    return false;
  self->delegate(entry->batcher, reload_atom::value);
  return caf::delegated<bool>{};
}

/// The model's instances set at run time: its batcher scales them (actors/batcher.hpp).
caf::result<uint32_t> scale_model(gateway_ptr self, const std::string& model, uint32_t min,
                                  uint32_t max) {
  if (auto err = controllable(self, model))
    return err;
  auto entry = self->state.directory->find(model);
  if (!entry || entry->unloaded || !entry->batcher)
    return make_error(errc::not_ready, "model '" + model + "' is not running (unloaded, or "
                                       "starting): load it first");
  self->delegate(entry->batcher, scale_atom::value, min, max);
  return caf::delegated<uint32_t>{};
}

caf::result<bool> start_model(gateway_ptr self, const std::string& model) {
  if (auto err = controllable(self, model))
    return err;
  auto rp = self->make_response_promise<bool>();
  self->request(self->state.root, std::chrono::seconds(30), restart_child_atom::value,
                "model " + model)
    .then(
      [self, rp, model](bool) mutable {
        self->state.directory->set_unloaded(model, false);
        rp.deliver(true);
      },
      [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
  return rp;
}

gateway_actor::behavior_type gateway_fn(gateway_ptr self,
                                        std::shared_ptr<const deployment_config> cfg,
                                        std::shared_ptr<model_directory> directory,
                                        caf::actor root) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.directory = std::move(directory);
  st.root = std::move(root);
  self->set_down_handler([self](caf::down_msg& down) { stage_down(self, down); });
  self->attach_functor([started = st.started] {
    for (auto& s : *started)
      caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
  });
  start_stages(self);
  return {
    [self](infer_atom, infer_request& req) { return route_request(self, req); },
    [self](ready_atom) -> bool { return self->state.directory->all_ready(); },
    [self](ready_atom, const std::string& model, const std::string& version) {
      return model_ready(self, model, version);
    },
    [self](status_atom, const std::string& model) -> caf::result<model_status> {
      auto entry = self->state.directory->find(model);
      if (!entry)
        return make_error(errc::model_not_found, "unknown model '" + model + "'");
      return entry->status;
    },
    [self](fault_atom, const std::string& model, fault_spec& spec) {
      return route_fault(self, model, spec);
    },
    [self](unload_atom, const std::string& model) -> caf::result<bool> {
      if (auto err = controllable(self, model))
        return err;
      self->state.directory->set_unloaded(model, true);
      return true;
    },
    [self](terminate_child_atom, const std::string& model) -> caf::result<bool> {
      if (auto err = controllable(self, model))
        return err;
      self->delegate(self->state.root, terminate_child_atom::value, "model " + model);
      return caf::delegated<bool>{};
    },
    [self](reload_atom, const std::string& model) { return reload_model(self, model); },
    [self](restart_child_atom, const std::string& model) { return start_model(self, model); },
    [self](scale_atom, const std::string& model, uint32_t min, uint32_t max) {
      return scale_model(self, model, min, max);
    },
  };
}

} // namespace

gateway_actor spawn_gateway(caf::actor_system& sys, std::shared_ptr<const deployment_config> cfg,
                            std::shared_ptr<model_directory> directory, caf::actor root) {
  return sys.spawn(gateway_fn, std::move(cfg), std::move(directory), std::move(root));
}

} // namespace actorserve
