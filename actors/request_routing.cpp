#include "actors/request_routing.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "runtime/batch_assembly.hpp"
#include "runtime/error.hpp"

namespace actorserve {

caf::error unloaded_error(const std::string& model) {
  return make_error(errc::model_not_found, "model '" + model + "' is unloaded (POST "
                                           "/v2/repository/models/" + model + "/load loads it)");
}

/// A model waiting out its crash-loop back-off: why, and when it is started again.
caf::error cooldown_error(const std::string& model, const model_directory::cooldown& c) {
  auto left = std::chrono::duration<double>(c.retry_at - std::chrono::steady_clock::now()).count();
  char seconds[32];
  std::snprintf(seconds, sizeof(seconds), "%.1f", std::max(left, 0.0));
  return make_error(errc::not_ready, "model '" + model + "' is not available: it is in "
                                     "crash-loop back-off, its supervisors gave up (" + c.reason
                                     + "); it is started again in " + seconds + " s (give-up "
                                     + std::to_string(c.in_a_row) + " in a row)");
}

namespace {

/// What a request asks that its model does not allow: the fault parameter, a priority level
/// outside the model's, a timeout past its max_timeout_us. Otherwise its timeout, in
/// microseconds.
caf::expected<int64_t> check_options(const deployment_config& cfg, const model_config& m,
                                     const infer_request& req) {
  if (!req.fault.empty() && !cfg.server.fault_injection)
    return make_error(errc::invalid_input, "request parameter 'actorserve_fault' is only "
                                           "accepted when server.fault_injection is enabled");
  if (!req.fault.empty() && m.is_pipeline())
    return make_error(errc::invalid_input, "request parameter 'actorserve_fault' is not for "
                                           "pipeline '" + m.name + "'; arm its steps' models "
                                           "with POST /v2/admin/faults");
  if (req.priority > 0 && !m.is_pipeline() // (a pipeline's steps check theirs)
      && req.priority > m.batching.priority_levels)
    return make_error(errc::invalid_input,
                      m.batching.priority_levels == 0
                        ? "model '" + m.name + "' has no priority levels "
                            "(batching.priority_levels): parameter 'priority' must be 0"
                        : "parameter 'priority' must be between 1 and "
                            + std::to_string(m.batching.priority_levels) + " for model '"
                            + m.name + "' (batching.priority_levels), got "
                            + std::to_string(req.priority));
  if (req.timeout_us < 0)
    return static_cast<int64_t>(m.default_timeout_us);
  if (req.timeout_us == 0 || static_cast<uint64_t>(req.timeout_us) > m.max_timeout_us)
    return make_error(errc::invalid_input,
                      "parameter 'timeout' must be between 1 and "
                        + std::to_string(m.max_timeout_us) + " microseconds (max_timeout_us "
                        "of model '" + m.name + "'), got " + std::to_string(req.timeout_us));
  return req.timeout_us;
}

/// Why the request's model cannot take it now (unknown, another version, unloaded, cooling
/// down, no batcher), or nothing.
caf::error model_unavailable(const model_config* model, const std::optional<model_directory::entry>& entry,
                             const infer_request& req) {
  if (!model || (!entry && !model->is_pipeline()))
    return make_error(errc::model_not_found, "unknown model '" + req.model + "'");
  auto& m = *model;
  if (!req.version.empty() && req.version != m.version)
    return make_error(errc::model_not_found, "model '" + m.name + "' has no version '"
                                               + req.version + "' (it serves version '"
                                               + m.version + "')");
  if (entry && entry->unloaded)
    return unloaded_error(m.name);
  if (entry && !entry->batcher && entry->cooling_down)
    return cooldown_error(m.name, *entry->cooling_down);
  if (entry && !entry->batcher)
    return make_error(errc::not_ready, "model '" + m.name + "' is not available: it has no "
                                       "running batcher (starting, or stopped by its "
                                       "supervisor)");
  return caf::none;
}

} // namespace

caf::expected<request_route> route_inference(const deployment_config& cfg,
                                             const model_config* model,
                                             model_directory& directory, infer_request& req,
                                             int64_t now_ns) {
  // (a pipeline has no batcher, so no directory entry: its steps' models have)
  auto entry = model && !model->is_pipeline() ? directory.find(req.model) : std::nullopt;
  if (auto err = model_unavailable(model, entry, req))
    return err;
  if (auto err = validate_request(*model, req))
    return err;
  auto timeout_us = check_options(cfg, *model, req);
  if (!timeout_us)
    return std::move(timeout_us.error());
  req.id = directory.next_request_id();
  req.deadline_ns = now_ns + *timeout_us * 1000;
  return request_route{model, entry ? entry->batcher : batcher_actor{}};
}

} // namespace actorserve
