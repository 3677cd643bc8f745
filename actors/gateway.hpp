// actors/gateway.hpp — the front door inside the actor system: routes requests by model name and
// version, assigns request ids and deadlines (the model's default timeout, or the request's
// `timeout` parameter up to the model's maximum), validates inputs against the model's
// declaration, and knows which models are ready from their batchers' status reports.
#pragma once

#include <memory>

#include <caf/actor_system.hpp>

#include "actors/interfaces.hpp"
#include "actors/model_directory.hpp"
#include "runtime/config.hpp"

namespace actorserve {

/// The gateway routes by `directory`, which batchers keep current: it holds no state of its own
/// worth keeping (request ids restart), so the root supervisor restarts it like any child.
/// `root` is the supervisor whose children are the models' subtrees ("model <name>"): model
/// control stops and starts them there.
gateway_actor spawn_gateway(caf::actor_system& sys, std::shared_ptr<const deployment_config> cfg,
                            std::shared_ptr<model_directory> directory, caf::actor root = {});

} // namespace actorserve
