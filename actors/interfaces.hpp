// The typed interfaces of actorserve's actors, in one header because they refer to each other.
// Each actor's own header says how to spawn it.
#pragma once

#include <string>

#include <caf/typed_actor.hpp>
#include <caf/replies_to.hpp>

#include "runtime/messages.hpp"

namespace actorserve {

/// Runs batches of one model instance on one device; answers its batcher with
/// batch_done/batch_failed messages.
using worker_actor = caf::typed_actor<caf::reacts_to<execute_atom, batch_job>,
                                      caf::reacts_to<fault_atom, fault_spec>>;

/// Collects one model's requests into batches for that model's workers.
using batcher_actor = caf::typed_actor<
  caf::replies_to<infer_atom, infer_request>::with<infer_response>,
  caf::reacts_to<worker_starting_atom, std::string>,          // from the supervisor
  caf::reacts_to<given_up_atom, std::string>,                 // from the supervisor
  // from a warmed-up worker: itself, its name, how many batches it can hold at once
  // (a plain caf::actor, so that it crosses process boundaries; it is a worker_actor)
  caf::reacts_to<worker_ready_atom, caf::actor, std::string, uint32_t>,
  caf::reacts_to<batch_done_atom, batch_outputs>,
  caf::reacts_to<batch_failed_atom, uint64_t, caf::error>,
  caf::reacts_to<tick_atom>,
  // a worker leaving: no new batches for it; answers once its batches are done and it is removed
  caf::replies_to<drain_atom, caf::actor>::with<bool>,
  // its ready workers on this node, one at a time: drained, stopped, started again (loading the
  // model file anew); answers once all are back (true), or when one does not come back (which
  // stays down); false when it has no worker ready to reload
  caf::replies_to<reload_atom>::with<bool>,
  caf::reacts_to<scale_atom>, // its autoscaling decision, every autoscaling.interval_ms
  // the instances set at run time: min, max (autoscaling bounds; without it min == max, the
  // count); answers the count now wanted
  caf::replies_to<scale_atom, uint32_t, uint32_t>::with<uint32_t>,
  caf::replies_to<fault_atom, fault_spec>::with<std::string>>; // arms a worker; names it

/// Routes requests by model, assigns ids and deadlines, validates, and knows readiness.
using gateway_actor = caf::typed_actor<
  caf::replies_to<infer_atom, infer_request>::with<infer_response>,
  caf::replies_to<ready_atom>::with<bool>,                           // every model ready?
  caf::replies_to<ready_atom, std::string, std::string>::with<bool>, // model, version ("" = any)
  caf::replies_to<status_atom, std::string>::with<model_status>,
  caf::replies_to<fault_atom, std::string, fault_spec>::with<std::string>, // model, fault
  // Model control (Triton's load/unload), by model name:
  caf::replies_to<unload_atom, std::string>::with<bool>,          // refuse its new requests
  caf::replies_to<terminate_child_atom, std::string>::with<bool>, // stop its subtree
  caf::replies_to<restart_child_atom, std::string>::with<bool>,   // start it again, take requests
  caf::replies_to<reload_atom, std::string>::with<bool>,          // its batcher's reload; false:
                                                                  // nothing to reload, start it
  caf::replies_to<scale_atom, std::string, uint32_t, uint32_t>::with<uint32_t>>; // its instances

} // namespace actorserve
