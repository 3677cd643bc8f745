// actors/pipeline.hpp — runs one request through a pipeline model (models[].pipeline): a
// short-lived actor per request, spawned by the gateway. Each step is a request to the gateway
// for the step's model (validated and batched with that model's other requests, on its own
// workers), or to the step's stage actor (runtime/stage.hpp), with what is left of the pipeline
// request's deadline; a step starts as soon as the
// tensors it takes exist, so independent steps run at once, and its outputs are passed on
// without a copy. The answer holds the pipeline's outputs; the first step that fails fails the
// request with its error, named by step and model.
#pragma once

#include <memory>

#include <caf/actor_system.hpp>
#include <caf/typed_actor.hpp>

#include "actors/interfaces.hpp"
#include "runtime/config.hpp"
#include "runtime/stage.hpp"

namespace actorserve {

using pipeline_run_actor =
  caf::typed_actor<caf::replies_to<infer_atom, infer_request>::with<infer_response>>;

/// Answers exactly one infer request for `pipeline` (one of `cfg`'s models), whose deadline the
/// gateway has set, and then ends. `stages`: the stage actor of each stage step, by step.
pipeline_run_actor spawn_pipeline_run(caf::actor_system& sys,
                                      std::shared_ptr<const deployment_config> cfg,
                                      const model_config* pipeline, gateway_actor gateway,
                                      std::vector<stage_actor> stages);

} // namespace actorserve
