// actors/request_routing.hpp — what the gateway checks of an inference request before its
// model's batcher takes it: the model exists (and the version asked), is loaded, not in crash-loop
// back-off, has a batcher; the request fits the model's inputs and options. Plain functions over
// the deployment and the model directory (which is thread-safe), so that a front's I/O thread
// routes a request straight to its batcher, one mailbox away, and the gateway routes the rest
// (pipelines, and requests of actors such as pipeline runs) with the same rules.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "actors/interfaces.hpp"
#include "actors/model_directory.hpp"
#include "runtime/config.hpp"

namespace actorserve {

/// Where a request goes once routed: its model's batcher, or (for a pipeline, which has none)
/// the gateway, which runs its steps.
struct request_route {
  const model_config* model = nullptr;
  batcher_actor batcher; // null for a pipeline
};

/// Checks `req` against the deployment and the directory and, when it may go on, gives it its id
/// and deadline (`now_ns`, on the steady clock, plus its timeout: its own, else its model's).
/// `model` is the deployment's model of `req.model` (cfg.find_model; nullptr: none).
/// Errors name what is wrong: model_not_found (unknown model or version, unloaded), not_ready
/// (crash-loop back-off, no batcher), invalid_input (inputs, priority, timeout, fault).
caf::expected<request_route> route_inference(const deployment_config& cfg,
                                             const model_config* model,
                                             model_directory& directory, infer_request& req,
                                             int64_t now_ns);

/// An unloaded model's answer (it names how to load it again).
caf::error unloaded_error(const std::string& model);

/// A model waiting out its crash-loop back-off: why, and when it is started again.
caf::error cooldown_error(const std::string& model, const model_directory::cooldown& c);

} // namespace actorserve
